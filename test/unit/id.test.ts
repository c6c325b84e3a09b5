import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idLength, newSessionId, sessionIdValidator } from '../../src/session/id.js';

describe('session IDs', () => {
  it('are 24 base64url characters from 18 random bytes by default', () => {
    const id = newSessionId();
    assert.match(id, /^[A-Za-z0-9_-]{24}$/);
    assert.equal(Buffer.from(id, 'base64url').length, 18);
  });

  it('do not repeat', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newSessionId()));
    assert.equal(ids.size, 10_000);
  });

  it('take a configurable number of bytes', () => {
    assert.equal(newSessionId(32).length, idLength(32));
    assert.equal(idLength(32), 43);
  });

  it('are accepted by the validator, and nothing else is', () => {
    const valid = sessionIdValidator();
    assert.ok(valid(newSessionId()));
    for (const bad of [
      '',
      'short',
      newSessionId() + 'x',
      newSessionId().slice(1),
      'a'.repeat(23) + '=',
      'a'.repeat(23) + '.',
      'a'.repeat(23) + '+',
      ' '.repeat(24),
      'ä'.repeat(24),
    ]) {
      assert.equal(valid(bad), false, JSON.stringify(bad));
    }
  });

  it('reject a last character whose padding bits are set, for lengths that have them', () => {
    const valid = sessionIdValidator(16); // 22 characters carry 132 bits for 128
    const id = newSessionId(16);
    assert.ok(valid(id));
    assert.equal(valid(id.slice(0, 21) + 'B'), false); // 'B' = 000001: a padding bit set
  });
});
