import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clearingCookie,
  isValidCookieName,
  occursOnceAsIs,
  sessionCookie,
  type CookieOptions,
} from '../../src/session/cookie.js';
import { parseSetCookie as parse } from '../support/set-cookie.js';

const options: CookieOptions = { name: 'sessid', maxAgeSeconds: 2_592_000, secure: 'auto' };
const ID = 'AbCdEfGhIjKlMnOpQrStUv-_';

describe('session cookie', () => {
  it('carries the name, the bare ID and every attribute SPEC asks for', () => {
    const cookie = parse(sessionCookie(options, ID, false));
    assert.equal(cookie.name, 'sessid');
    assert.equal(cookie.value, ID);
    assert.equal(cookie.attributes.get('max-age'), '2592000');
    assert.equal(cookie.attributes.get('path'), '/');
    assert.equal(cookie.attributes.get('httponly'), '');
    assert.equal(cookie.attributes.get('samesite'), 'Lax');
    assert.equal(cookie.attributes.has('domain'), false);
    assert.equal(cookie.attributes.has('expires'), false);
  });

  it('uses the configured name and Max-Age', () => {
    const cookie = parse(sessionCookie({ ...options, name: 'my.sess', maxAgeSeconds: 60 }, ID, false));
    assert.equal(cookie.name, 'my.sess');
    assert.equal(cookie.attributes.get('max-age'), '60');
  });

  it('is Secure under `auto` only when the request came over HTTPS', () => {
    assert.equal(parse(sessionCookie(options, ID, true)).attributes.has('secure'), true);
    assert.equal(parse(sessionCookie(options, ID, false)).attributes.has('secure'), false);
  });

  it('is always Secure under `always`, and never under `never`', () => {
    for (const secureRequest of [true, false]) {
      assert.equal(
        parse(sessionCookie({ ...options, secure: 'always' }, ID, secureRequest)).attributes.has('secure'),
        true,
      );
      assert.equal(
        parse(sessionCookie({ ...options, secure: 'never' }, ID, secureRequest)).attributes.has('secure'),
        false,
      );
    }
  });

  it('is cleared with an empty value, Max-Age=0, a past expiry and the same Path', () => {
    const cookie = parse(clearingCookie(options, false));
    assert.equal(cookie.name, 'sessid');
    assert.equal(cookie.value, '');
    assert.equal(cookie.attributes.get('max-age'), '0');
    assert.ok(Date.parse(cookie.attributes.get('expires') ?? '') < Date.now());
    assert.equal(cookie.attributes.get('path'), '/');
    assert.equal(cookie.attributes.get('httponly'), '');
    assert.equal(cookie.attributes.get('samesite'), 'Lax');
    assert.equal(cookie.attributes.has('secure'), false);
    assert.equal(parse(clearingCookie(options, true)).attributes.has('secure'), true);
    assert.equal(parse(clearingCookie({ ...options, secure: 'always' }, false)).attributes.has('secure'), true);
  });

  it('accepts only token characters in a cookie name', () => {
    for (const good of ['sessid', 'SID', 'a.b-c_d', "x!#$%&'*+^`|~"]) assert.equal(isValidCookieName(good), true, good);
    for (const bad of ['', 'a b', 'a=b', 'a;b', 'a,b', 'a"b', 'é', 'a\tb', '(x)'])
      assert.equal(isValidCookieName(bad), false, bad);
  });

  describe('occursOnceAsIs', () => {
    it('accepts the name once, with exactly the value, among other cookies and spaces', () => {
      for (const header of [
        `sessid=${ID}`,
        `a=1; sessid=${ID}; b=2`,
        `a=1;sessid=${ID};b=2`,
        `  sessid=${ID}  `,
        `xsessid=1; sessid=${ID}; sessidx=2`,
        `flag; sessid=${ID}`,
      ]) {
        assert.equal(occursOnceAsIs(header, 'sessid', ID), true, header);
      }
    });

    it('refuses a quoted, percent-encoded or j: form of the value', () => {
      for (const header of [
        `sessid="${ID}"`,
        `sessid=%41${ID.slice(1)}`,
        `sessid=j:"${ID}"`,
        `sessid=${ID}x`,
        `sessid=`,
        `sessid`,
        `other=${ID}`,
        // Spaces around '=' (which cookie-parser trims, and no browser sends) are not the form
        // of a session cookie either.
        `sessid = ${ID}`,
        `sessid =${ID}`,
      ]) {
        assert.equal(occursOnceAsIs(header, 'sessid', ID), false, header);
      }
    });

    it('refuses two cookies of the name, whichever carries the value', () => {
      for (const header of [
        `sessid=${ID}; sessid=${ID}`,
        `sessid=${ID}; sessid=other`,
        `sessid=other; sessid=${ID}`,
        `sessid=${ID}; sessid=`,
      ]) {
        assert.equal(occursOnceAsIs(header, 'sessid', ID), false, header);
      }
    });
  });
});
