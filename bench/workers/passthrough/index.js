// Row 1 of the benchmark: the floor. Forwards every request to ORIGIN_URL unchanged (same
// method, headers, body, path and query) and streams the origin's answer back.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const origin = new URL(env.ORIGIN_URL);
    url.protocol = origin.protocol;
    url.host = origin.host;
    return fetch(new Request(url, request));
  },
};
