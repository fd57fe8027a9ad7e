// Which URLs may be plain http: loopback only (127.0.0.0/8, ::1, localhost). Everything
// else must be https, so keys and replicated data never cross a network in the clear.

/** Whether a URL's host is loopback. */
export function isLoopbackUrl(url) {
  const u = url instanceof URL ? url : new URL(url);
  const h = u.hostname.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '[::1]') return true;
  // The URL parser has already normalised IPv4 forms (0x7f.1, 2130706433) to dotted quads.
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
