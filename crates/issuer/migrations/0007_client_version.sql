-- A number that changes with every change to an app (random when the app is
-- made, so an app removed and made again under the same id never repeats it):
-- a copy of the app read earlier is still current while its number matches.
ALTER TABLE clients ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
