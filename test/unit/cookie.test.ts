import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clearingCookie,
  isValidCookieName,
  sessionCookie,
  sessionCookieValue,
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

  describe('sessionCookieValue', () => {
    it('finds the name once, with its value as sent, among other cookies and spaces', () => {
      for (const header of [
        `sessid=${ID}`,
        `a=1; sessid=${ID}; b=2`,
        `a=1;sessid=${ID};b=2`,
        `  sessid=${ID}  `,
        `sessid=  ${ID} ; b=2`,
        `xsessid=1; sessid=${ID}; sessidx=2`,
        `flag; sessid=${ID}`,
        `other=sessid=1; sessid=${ID}`,
      ]) {
        assert.equal(sessionCookieValue(header, 'sessid'), ID, header);
      }
    });

    it('decodes nothing: a quoted, percent-encoded or j: form is returned as sent', () => {
      assert.equal(sessionCookieValue(`sessid="${ID}"`, 'sessid'), `"${ID}"`);
      assert.equal(sessionCookieValue(`sessid=%41${ID.slice(1)}`, 'sessid'), `%41${ID.slice(1)}`);
      assert.equal(sessionCookieValue(`sessid=j:"${ID}"`, 'sessid'), `j:"${ID}"`);
      assert.equal(sessionCookieValue(`sessid=`, 'sessid'), '');
    });

    it('says there is no such cookie when the name is only part of another name or value', () => {
      for (const header of ['', 'sessid', `other=${ID}`, `xsessid=${ID}`, `sessidx=${ID}`, `a=sessid=${ID}`]) {
        assert.equal(sessionCookieValue(header, 'sessid'), undefined, header);
      }
    });

    it('refuses two cookies of the name, whichever carries the value, and spaces before =', () => {
      for (const header of [
        `sessid=${ID}; sessid=${ID}`,
        `sessid=${ID}; sessid=other`,
        `sessid=other; sessid=${ID}`,
        `sessid=${ID}; sessid=`,
        // Spaces around '=' (which cookie parsers trim, and no browser sends) are not the form
        // of a session cookie either.
        `sessid = ${ID}`,
        `sessid =${ID}`,
      ]) {
        assert.equal(sessionCookieValue(header, 'sessid'), null, header);
      }
    });
  });
});
