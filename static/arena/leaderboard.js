// Live leaderboard: when a newer rating snapshot exists, swap in the server-rendered board.
// Two signals: the worker's push on ws(s)://host/ws/leaderboard/ (Redis mode), and a poll of
// /api/leaderboard every 15 s, the only one that works in the embedded mode (its in-memory
// channel layer cannot carry the worker's news to the web process). The page works without it.
(function () {
  "use strict";
  const POLL_MS = 15000;
  let root = document.getElementById("leaderboard");
  if (!root || !root.dataset.api) return;
  let refreshing = false;

  function current() { return Number(root.dataset.snapshot || 0); }

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("leaderboard");
      if (!fresh) return;
      root.innerHTML = fresh.innerHTML; // rendered by Django templates, values escaped
      root.dataset.snapshot = fresh.dataset.snapshot || "0";
      if (location.hash) {
        const row = document.getElementById(decodeURIComponent(location.hash.slice(1)));
        if (row) row.scrollIntoView({ block: "center" });
      }
    } catch (e) { /* the next signal retries */ } finally {
      refreshing = false;
    }
  }

  function onSnapshot(id) {
    if (id && id !== current()) refresh();
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.api, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        onSnapshot(data.snapshot ? data.snapshot.id : 0);
      }
    } catch (e) { /* offline for a moment: try again next tick */ }
    setTimeout(poll, POLL_MS);
  }

  let delay = 1000;
  function listen() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    try { socket = new WebSocket(scheme + location.host + "/ws/leaderboard/"); } catch (e) { return; }
    socket.onopen = function () { delay = 1000; };
    socket.onmessage = function (event) {
      try {
        const message = JSON.parse(event.data);
        if (message.type === "leaderboard") onSnapshot(Number(message.snapshot_id));
      } catch (e) { /* not for us */ }
    };
    socket.onclose = function () {
      delay = Math.min(delay * 2, 60000);
      setTimeout(listen, delay);
    };
  }

  listen();
  setTimeout(poll, POLL_MS);
})();
