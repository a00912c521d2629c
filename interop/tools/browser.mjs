#!/usr/bin/env node
// agentgate interop: a real browser on agentgate's sign-in, consent and account
// pages. Debian's Chromium (/usr/bin/chromium, headless) driven by the pinned
// playwright-core; one fresh browser context (own cookies, own locale, so own
// Accept-Language) per language.
//
//   node tools/browser.mjs --base http://127.0.0.1:PORT --client-id ID --password PW
//        --out DIR [--username alice] [--languages es,ja,en] [--executable /usr/bin/chromium]
//        [--timeout-ms 90000]
//
// For each language: builds an authorization request for the (third-party)
// app (code + PKCE S256, state, scope "openid profile email mcp:tools",
// resource {base}/mcp, a loopback redirect_uri on a random port), fills in the
// sign-in form (by its labels in English, by the inputs' ids otherwise) and
// takes sign-in-LANG.png, submits it, checks the consent page (the app's name,
// the Allow and Deny buttons in that language) and takes consent-LANG.png.
// English presses Allow; the other languages press Deny. The browser's request
// to the redirect_uri is intercepted (nothing listens there) and its code,
// state and iss are checked; English's code is exchanged at the token endpoint.
// English also takes consent-en-390.png (a 390 px wide phone viewport) and,
// after Allow, opens {base}/account and takes account-en.png (the app listed).
// English comes last by default: once alice allowed the app, her consent is
// stored and a later authorization would skip the consent page.
//
// Always prints exactly one JSON line on stdout and exits 0 (exit 2 only for
// bad command-line usage):
//   {"ok":true|false,"failures":[...],"screenshots":[paths],"redirect":{...},"token":{...},
//    "languages":{"es":{...},"ja":{...},"en":{...}},"account":{...},"browser":"..."}
// "failures" lists every check that did not hold; ok is true when it is empty.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { describe, parseArgs as parseOptions } from './common.mjs';

// What agentgate's pages say (crates/issuer/src/ui/i18n.rs).
const TEXT = {
  en: { signIn: 'Sign in', login: 'Username or email', password: 'Password', consent: 'Allow access?', allow: 'Allow', deny: 'Deny', account: 'Your account' },
  es: { signIn: 'Iniciar sesión', login: 'Usuario o correo electrónico', password: 'Contraseña', consent: '¿Permitir el acceso?', allow: 'Permitir', deny: 'Denegar', account: 'Tu cuenta' },
  ja: { signIn: 'サインイン', login: 'ユーザー名またはメールアドレス', password: 'パスワード', consent: 'アクセスを許可しますか？', allow: '許可', deny: '拒否', account: 'アカウント' },
};
const APP_NAME = 'SmartMail AI';
const SCOPE = 'openid profile email mcp:tools';

function usage(message) {
  process.stderr.write(`browser: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  return parseOptions(argv, [
    'base', 'client-id', 'username', 'password', 'out', 'languages', 'executable', 'timeout-ms',
  ], usage);
}

const opts = parseArgs(process.argv.slice(2));
if (!opts.base) usage('--base is required');
if (!opts['client-id']) usage('--client-id is required');
if (!opts.out) usage('--out is required');
let base;
try {
  base = new URL(opts.base).href.replace(/\/+$/, '');
} catch {
  usage(`--base is not a URL: ${JSON.stringify(opts.base)}`);
}
const clientId = opts['client-id'];
const username = opts.username || 'alice';
const password = opts.password ?? process.env.AGENTGATE_DEMO_PASSWORD;
if (password === undefined) usage('--password is required (or AGENTGATE_DEMO_PASSWORD)');
const languages = (opts.languages || 'es,ja,en').split(',').map((s) => s.trim()).filter(Boolean);
for (const lang of languages) if (!TEXT[lang]) usage(`unknown language ${JSON.stringify(lang)} (en, es, ja)`);
const executablePath = opts.executable || '/usr/bin/chromium';
const timeoutMs = Number(opts['timeout-ms'] || 90000);
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive number');
const outDir = path.resolve(opts.out);
mkdirSync(outDir, { recursive: true });

// A loopback redirect may use any port (RFC 8252 section 7.3); nothing listens on it.
const redirectUri = `http://127.0.0.1:${49152 + Math.floor(Math.random() * 16000)}/callback`;
const resource = `${base}/mcp`;

// ------------------------------------------------------------------ output

const failures = [];
const screenshots = [];
const report = { languages: {} };

function check(condition, message) {
  if (!condition) failures.push(message);
  return condition;
}

let finished = false;
function finish(extra = {}) {
  if (finished) return;
  finished = true;
  const out = { ok: failures.length === 0, failures, screenshots, ...report, ...extra };
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}

// ------------------------------------------------------------------ helpers

const b64url = (buf) => Buffer.from(buf).toString('base64url');

async function discover() {
  const response = await fetch(`${base}/.well-known/oauth-authorization-server`);
  if (!response.ok) throw new Error(`authorization server metadata: HTTP ${response.status}`);
  return response.json();
}

function authorization(meta) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const u = new URL(meta.authorization_endpoint);
  u.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: SCOPE,
    state,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    resource,
  }).toString();
  return { url: u.href, verifier, state };
}

function isCallback(u) {
  const want = new URL(redirectUri);
  return u.origin === want.origin && u.pathname === want.pathname;
}

async function shoot(page, name) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
  return file;
}

async function pageInfo(page) {
  return page.evaluate(() => ({
    lang: document.documentElement.lang,
    title: document.title,
    h1: document.querySelector('h1')?.textContent.trim() ?? null,
    labels: [...document.querySelectorAll('label')].map((l) => l.textContent.trim()),
    buttons: [...document.querySelectorAll('button')].map((b) => b.textContent.trim()),
    error: document.querySelector('.error')?.textContent.trim() ?? null,
    // Wider than the viewport means a horizontal scrollbar.
    overflowX: document.documentElement.scrollWidth > window.innerWidth,
  }));
}

function callbackReport(u, state, issuer) {
  const q = u.searchParams;
  return {
    code: q.has('code'),
    stateMatches: q.get('state') === state,
    iss: q.get('iss'),
    issMatches: q.get('iss') === issuer,
    error: q.get('error'),
  };
}

async function exchange(meta, code, verifier) {
  const response = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: redirectUri,
      client_id: clientId,
      resource,
    }).toString(),
  });
  const body = await response.json().catch(() => ({}));
  return {
    status: response.status,
    scope: body.scope ?? null,
    accessToken: typeof body.access_token === 'string',
    error: body.error ?? null,
  };
}

// ------------------------------------------------------------------ one language

async function runLanguage(browser, meta, lang) {
  const t = TEXT[lang];
  const seen = {};
  report.languages[lang] = seen;
  const context = await browser.newContext({ locale: lang, viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(15000);
  try {
    // The browser's visit to the redirect_uri: answered here, never sent.
    let resolveCallback;
    const callback = new Promise((resolve) => { resolveCallback = resolve; });
    await context.route((u) => isCallback(u), async (route) => {
      resolveCallback(new URL(route.request().url()));
      await route.fulfill({
        status: 200,
        contentType: 'text/html; charset=utf-8',
        body: '<!doctype html><title>callback</title><p>back at the app</p>',
      });
    });

    const page = await context.newPage();
    const auth = authorization(meta);

    // Sign-in page.
    const first = await page.goto(auth.url);
    check(first?.status() === 200, `${lang}: authorization page HTTP ${first?.status()}`);
    seen.signIn = await pageInfo(page);
    check(seen.signIn.lang === lang, `${lang}: sign-in page lang=${seen.signIn.lang}`);
    check(seen.signIn.h1 === t.signIn, `${lang}: sign-in heading ${JSON.stringify(seen.signIn.h1)}`);
    check(seen.signIn.labels.includes(t.login) && seen.signIn.labels.includes(t.password),
      `${lang}: sign-in labels ${JSON.stringify(seen.signIn.labels)}`);
    check(await page.getByText(APP_NAME).count() > 0, `${lang}: sign-in page does not name ${APP_NAME}`);
    if (lang === 'en') {
      await page.getByLabel('Username or email').fill(username);
      await page.getByLabel('Password').fill(password);
    } else {
      await page.locator('#login').fill(username);
      await page.locator('input[name="password"]').fill(password);
    }
    await shoot(page, `sign-in-${lang}.png`);
    await page.getByRole('button', { name: t.signIn }).click();

    // Consent page.
    const allow = page.getByRole('button', { name: t.allow, exact: true });
    const deny = page.getByRole('button', { name: t.deny, exact: true });
    try {
      await allow.waitFor();
    } catch {
      const info = await pageInfo(page);
      throw new Error(`${lang}: no consent page after signing in (h1 ${JSON.stringify(info.h1)}, error ${JSON.stringify(info.error)})`);
    }
    seen.consent = await pageInfo(page);
    seen.consent.path = new URL(page.url()).pathname;
    check(seen.consent.lang === lang, `${lang}: consent page lang=${seen.consent.lang}`);
    check(seen.consent.h1 === t.consent, `${lang}: consent heading ${JSON.stringify(seen.consent.h1)}`);
    check(await page.getByText(APP_NAME).count() > 0, `${lang}: consent page does not name ${APP_NAME}`);
    seen.consent.appNamed = true;
    check(await deny.count() === 1, `${lang}: no ${t.deny} button`);
    check(!seen.consent.overflowX, `${lang}: consent page scrolls sideways at 1280 px`);
    await shoot(page, `consent-${lang}.png`);

    const decision = lang === 'en' ? 'allow' : 'deny';
    if (decision === 'allow') {
      // The same page on a phone.
      await page.setViewportSize({ width: 390, height: 844 });
      seen.consentNarrow = { overflowX: (await pageInfo(page)).overflowX };
      check(!seen.consentNarrow.overflowX, `${lang}: consent page scrolls sideways at 390 px`);
      await shoot(page, `consent-${lang}-390.png`);
      await page.setViewportSize({ width: 1280, height: 800 });
    }
    seen.decision = decision;
    await (decision === 'allow' ? allow : deny).click();
    const back = await Promise.race([
      callback,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`${lang}: no redirect to ${redirectUri}`)), 15000)),
    ]);
    // The route answered; let that navigation finish before the next one starts.
    await page.waitForURL((u) => isCallback(u));
    seen.redirect = callbackReport(back, auth.state, meta.issuer);
    check(seen.redirect.stateMatches, `${lang}: state does not match`);
    check(seen.redirect.issMatches, `${lang}: iss ${JSON.stringify(seen.redirect.iss)} is not ${meta.issuer}`);
    if (decision === 'allow') {
      check(seen.redirect.code && !seen.redirect.error, `${lang}: no code after Allow (error ${seen.redirect.error})`);
      report.redirect = seen.redirect;
      if (seen.redirect.code) {
        report.token = await exchange(meta, back.searchParams.get('code'), auth.verifier);
        check(report.token.status === 200 && report.token.accessToken,
          `${lang}: token exchange HTTP ${report.token.status} ${report.token.error ?? ''}`.trim());
      }

      // The account page of the same browser: the app is connected now.
      await page.goto(`${base}/account`);
      const account = await pageInfo(page);
      account.apps = await page.locator('ul.apps > li > strong').allTextContents();
      report.account = account;
      check(account.h1 === t.account, `${lang}: account heading ${JSON.stringify(account.h1)}`);
      check(account.apps.includes(APP_NAME), `${lang}: account page does not list ${APP_NAME}: ${JSON.stringify(account.apps)}`);
      await shoot(page, `account-${lang}.png`);
    } else {
      check(seen.redirect.error === 'access_denied' && !seen.redirect.code,
        `${lang}: Deny gave ${JSON.stringify(seen.redirect)}`);
    }
  } finally {
    await context.close().catch(() => {});
  }
}

// ------------------------------------------------------------------ main

async function main() {
  const meta = await discover();
  const args = [];
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  const browser = await chromium.launch({ executablePath, headless: true, args });
  report.browser = browser.version();
  try {
    for (const lang of languages) {
      try {
        await runLanguage(browser, meta, lang);
      } catch (err) {
        failures.push(describe(err));
      }
    }
  } finally {
    await browser.close().catch(() => {});
  }
}

const timer = setTimeout(() => {
  failures.push(`timeout after ${timeoutMs} ms`);
  finish();
}, timeoutMs);

main().then(
  () => {
    clearTimeout(timer);
    finish();
  },
  (err) => {
    clearTimeout(timer);
    failures.push(describe(err));
    finish();
  },
);
