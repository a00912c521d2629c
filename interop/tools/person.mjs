#!/usr/bin/env node
// agentgate interop: a person at a real browser, for agents that "open the
// browser". Set as $BROWSER, it is started with the authorization URL as its
// last argument: Debian's Chromium (headless, driven by the pinned
// playwright-core) opens it, signs in on the issuer's sign-in page, reads the
// consent page and presses Allow (or Deny), then lets the browser follow the
// redirect back to the agent's loopback port, like a person would.
//
//   BROWSER="node tools/person.mjs" agentgate agent call URL whoami
//
// Settings come from the environment, which the agent passes on:
//   AGENTGATE_DEMO_PASSWORD   the password (required)
//   AGENTGATE_PERSON_USERNAME who signs in (default alice)
//   AGENTGATE_PERSON_DECISION allow (default) or deny
//   AGENTGATE_PERSON_PAGES    whose pages: agentgate (default, in English) or
//                             oidc-provider (its development sign-in and consent
//                             pages, which have no Deny)
//   AGENTGATE_PERSON_PROVIDER on agentgate's sign-in page, press "Continue with
//                             <this>" instead of typing a password: sign in and
//                             consent on oidc-provider's pages, then decide on
//                             agentgate's consent page
//   AGENTGATE_PERSON_SCREENSHOT a PNG file: the sign-in page, as the person saw it
//   AGENTGATE_PERSON_REPORT   where to write what the person saw, once done, as JSON:
//     {"ok":bool,"failures":[...],"consent":{"h1","text"},
//      "landing":{"origin","path","params":[names],"text"}}
//   AGENTGATE_CHROMIUM        the browser (default /usr/bin/chromium)
//
// Exits 0 when every step held, 1 otherwise (the report says which).

import { renameSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { describe } from './common.mjs';

const url = process.argv.at(-1);
const env = process.env;
const username = env.AGENTGATE_PERSON_USERNAME || 'alice';
const decision = env.AGENTGATE_PERSON_DECISION || 'allow';
const report = { ok: false, failures: [] };

// Where each issuer's pages keep their fields and buttons.
const PAGES = {
  agentgate: {
    login: (page) => page.getByLabel('Username or email'),
    password: (page) => page.getByLabel('Password'),
    signIn: (page) => page.getByRole('button', { name: 'Sign in' }),
    allow: (page) => page.getByRole('button', { name: 'Allow', exact: true }),
    deny: (page) => page.getByRole('button', { name: 'Deny', exact: true }),
  },
  'oidc-provider': {
    login: (page) => page.locator('input[name="login"]'),
    password: (page) => page.locator('input[name="password"]'),
    signIn: (page) => page.getByRole('button', { name: 'Sign-in' }),
    allow: (page) => page.getByRole('button', { name: 'Continue' }),
  },
};
const pages = PAGES[env.AGENTGATE_PERSON_PAGES || 'agentgate'];

function finish(code) {
  report.ok = report.failures.length === 0;
  // Written whole, then renamed: whoever waits for the file reads all of it.
  const file = env.AGENTGATE_PERSON_REPORT;
  if (file) {
    writeFileSync(`${file}.part`, `${JSON.stringify(report)}\n`);
    renameSync(`${file}.part`, file);
  }
  process.exit(code ?? (report.ok ? 0 : 1));
}

if (!url || !URL.canParse(url)) {
  report.failures.push(`usage: person.mjs AUTHORIZATION_URL (got ${JSON.stringify(url)})`);
  finish(2);
}
if (env.AGENTGATE_DEMO_PASSWORD === undefined) {
  report.failures.push('AGENTGATE_DEMO_PASSWORD is not set');
  finish(2);
}
if (!pages) {
  report.failures.push(`AGENTGATE_PERSON_PAGES must be one of ${Object.keys(PAGES).join(', ')}`);
  finish(2);
}
if (!['allow', 'deny'].includes(decision) || !pages[decision]) {
  report.failures.push(`AGENTGATE_PERSON_DECISION: ${JSON.stringify(decision)} is not a button on these pages`);
  finish(2);
}

const browser = await chromium.launch({ executablePath: env.AGENTGATE_CHROMIUM || '/usr/bin/chromium', headless: true });
try {
  const context = await browser.newContext({ locale: 'en' });
  context.setDefaultTimeout(20000);
  const page = await context.newPage();
  await page.goto(url);
  if (env.AGENTGATE_PERSON_SCREENSHOT) await page.screenshot({ path: env.AGENTGATE_PERSON_SCREENSHOT, fullPage: true });
  if (env.AGENTGATE_PERSON_PROVIDER) {
    // Through the identity provider: its pages, then back to agentgate's.
    await page.getByRole('button', { name: `Continue with ${env.AGENTGATE_PERSON_PROVIDER}` }).click();
    const provider = PAGES['oidc-provider'];
    await provider.login(page).fill(username);
    await provider.password(page).fill('any password: devInteractions');
    await provider.signIn(page).click();
    await provider.allow(page).click();
  } else {
    await pages.login(page).fill(username);
    await pages.password(page).fill(env.AGENTGATE_DEMO_PASSWORD);
    await pages.signIn(page).click();
  }

  const button = pages[decision](page);
  await button.waitFor();
  report.consent = {
    h1: (await page.locator('h1').first().textContent())?.trim() ?? null,
    text: await page.locator('body').innerText(),
  };
  // The redirect leaves the issuer for the agent's loopback redirect URI.
  const issuer = new URL(url).origin;
  await Promise.all([page.waitForURL((u) => u.origin !== issuer), button.click()]);
  await page.waitForLoadState();
  // Where the browser landed, without the code itself.
  const landed = new URL(page.url());
  report.landing = {
    origin: landed.origin,
    path: landed.pathname,
    params: [...landed.searchParams.keys()],
    text: await page.locator('body').innerText(),
  };
} catch (error) {
  report.failures.push(describe(error));
} finally {
  await browser.close();
}
finish();
