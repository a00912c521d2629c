// Shared by the interop tools: command-line options, a cookie jar for the one
// host a tool talks to, and error messages that include their causes.

// Command-line options: `--name value` or `--name=value`, each name from `known`,
// every value a string. Anything else goes to `onError(message)`, which is
// expected not to return (exit or throw).
export function parseArgs(argv, known, onError) {
  const names = new Set(known);
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (!arg.startsWith('--')) onError(`unexpected argument ${JSON.stringify(arg)}`);
    let name = arg.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq !== -1) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      if (i + 1 >= argv.length) onError(`--${name} needs a value`);
      i += 1;
      value = argv[i];
    }
    if (!names.has(name)) onError(`unknown option --${name}`);
    out[name] = value;
  }
  return out;
}

// A small RFC 6265-style jar for a single host: cookies are keyed by name and
// path, sent when the request path is inside the cookie path, and dropped when
// the server expires them.
export class CookieJar {
  #cookies = new Map();

  store(response, requestUrl) {
    const lines = response.headers.getSetCookie?.() ?? [];
    for (const line of lines) this.#storeOne(line, requestUrl);
  }

  #storeOne(line, requestUrl) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();

    let path;
    let expires;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i === -1 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const val = i === -1 ? '' : attr.slice(i + 1).trim();
      if (key === 'path' && val.startsWith('/')) {
        path = val;
      } else if (key === 'max-age') {
        const seconds = Number(val);
        if (Number.isFinite(seconds)) expires = Date.now() + seconds * 1000;
      } else if (key === 'expires' && expires === undefined) {
        const at = Date.parse(val);
        if (!Number.isNaN(at)) expires = at;
      }
    }
    if (path === undefined) {
      // Default path: the request path up to (not including) its last slash.
      const p = new URL(requestUrl).pathname;
      const slash = p.lastIndexOf('/');
      path = slash > 0 ? p.slice(0, slash) : '/';
    }

    const key = `${name}\u0000${path}`;
    if (expires !== undefined && expires <= Date.now()) {
      this.#cookies.delete(key);
    } else {
      this.#cookies.set(key, { name, value, path, expires });
    }
  }

  header(url) {
    const reqPath = new URL(url).pathname;
    const now = Date.now();
    const matching = [];
    for (const [key, c] of this.#cookies) {
      if (c.expires !== undefined && c.expires <= now) {
        this.#cookies.delete(key);
      } else if (pathMatches(reqPath, c.path)) {
        matching.push(c);
      }
    }
    // Longer paths first, as browsers do.
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

function pathMatches(reqPath, cookiePath) {
  if (reqPath === cookiePath) return true;
  if (!reqPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || reqPath[cookiePath.length] === '/';
}

// An error and its causes, on one line.
export function describe(err) {
  if (!err) return 'unknown error';
  const parts = [err.message || String(err)];
  let cause = err.cause;
  while (cause && parts.length < 4) {
    parts.push(cause.message || cause.code || String(cause));
    cause = cause.cause;
  }
  return parts.filter(Boolean).join(': ');
}
