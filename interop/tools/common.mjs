// Shared by the interop tools: command-line options, a cookie jar for the one
// host a tool talks to, reading HTML pages, and error messages that include
// their causes.

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

// HTML character references, decoded.
export function decodeEntities(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

// The text of a page, tags and styles dropped, whitespace folded.
export function textOf(html) {
  return decodeEntities(html.replace(/<style[\s\S]*?<\/style>/gi, ' ').replace(/<[^>]+>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
}

// The attributes of one start tag, names lower-cased, values decoded.
export function attributes(tag) {
  const attrs = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
  const body = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  let m;
  while ((m = re.exec(body)) !== null) attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return attrs;
}
