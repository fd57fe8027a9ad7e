// TollgateError: every error the package raises on purpose.
//
// Errors thrown by the wasm core are plain `Error` objects whose `name` is
// "TollgateError" with a string `code` (see edge/npm/src/error.rs). The class below
// recognises those with `instanceof` by that brand rather than by prototype, so an
// error made by the ESM copy of the package is also an instance for the CJS copy.

/** The conformance reasons, in check order. */
export const REASONS = Object.freeze([
  'too_large',
  'malformed',
  'unsupported_algorithm',
  'unsupported_critical_header',
  'invalid_type',
  'unknown_key',
  'invalid_signature',
  'invalid_claim',
  'expired',
  'not_yet_valid',
  'invalid_issuer',
  'invalid_audience',
  'missing_claim',
  'revoked',
]);

// Extra fields some errors carry: the service's `kind`, HTTP `status`, `detail`,
// `retryAfter` (seconds), the answer's `body`, the `attempts` a call made, the `claim`
// an issue error is about.
const DETAIL_FIELDS = ['kind', 'status', 'detail', 'retryAfter', 'body', 'attempts', 'claim'];

export class TollgateError extends Error {
  /**
   * @param {string} message
   * @param {{ code: string, reason?: string, cause?: unknown }} details
   */
  constructor(message, details) {
    super(message, details && 'cause' in details ? { cause: details.cause } : undefined);
    this.name = 'TollgateError';
    this.code = details.code;
    if (details.reason !== undefined) this.reason = details.reason;
    for (const k of DETAIL_FIELDS) {
      if (details[k] !== undefined) this[k] = details[k];
    }
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'TollgateError' && typeof value.code === 'string';
  }
}

/** A token rejection raised on the JS side, shaped exactly like the core's. */
export function tokenError(reason, message) {
  const code = reason === 'expired' ? 'TOKEN_EXPIRED' : reason === 'revoked' ? 'TOKEN_REVOKED' : 'TOKEN_INVALID';
  return new TollgateError(message, { code, reason });
}

/** Whether `e` is a token rejection (it has a conformance reason). */
export function isTokenError(e) {
  return e instanceof TollgateError && typeof e.reason === 'string' && e.code.startsWith('TOKEN_');
}
