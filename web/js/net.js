// Request helpers shared by the engine adapters.

// Append the viewer's CloudFront grant (query mode) to a URL the player is about to request.
// One custom policy over {base}/{channel}/* authorises every object of the channel, so the same
// query string goes on every variant playlist, init and media segment the player derives.
export function withGrant(url, grantQuery) {
  if (!grantQuery || /[?&]Signature=/.test(url)) return url;
  return url + (url.indexOf("?") >= 0 ? "&" : "?") + grantQuery;
}

// Cookies travel cross-site only when the request asks for credentials (and CORS names the page).
export function needsCredentials(url) {
  try {
    return new URL(url, window.location.href).origin !== window.location.origin;
  } catch (e) {
    return false;
  }
}

// Buffered seconds ahead of the playhead in the range that holds it.
export function bufferAhead(video) {
  const t = video.currentTime;
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= t + 0.1 && t <= b.end(i)) return Math.max(0, b.end(i) - t);
  }
  return 0;
}
