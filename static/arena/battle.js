// The rater's battle loop over the /ws/arena/ WebSocket (protocol in README "Battle API").
// Model output arrives as plain text while streaming (shown with textContent) and as
// server-sanitized HTML when a side is done; nothing else is ever put into innerHTML.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const root = $("arena");
  if (!root) return;
  const maxTurns = parseInt(root.dataset.maxTurns, 10);
  const prompt = $("prompt"), send = $("send"), stop = $("stop"), newRound = $("new-round");
  const statusEl = $("status");
  const voteButtons = Array.from(document.querySelectorAll("#votes button"));
  const state = { socket: null, battleId: null, pending: {}, turns: 0, generating: false, voted: false, retry: 0 };

  function setStatus(text, isError) {
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", !!isError);
  }

  function refreshControls() {
    const connected = state.socket && state.socket.readyState === WebSocket.OPEN;
    const canPrompt = connected && state.battleId && !state.generating && !state.voted && state.turns < maxTurns;
    send.disabled = !canPrompt;
    prompt.disabled = !canPrompt;
    stop.disabled = !state.generating;
    const canVote = connected && state.battleId && state.turns > 0 && !state.generating && !state.voted;
    voteButtons.forEach((b) => { b.disabled = !canVote; });
  }

  function addMessage(side, role, text) {
    const div = document.createElement("div");
    div.className = "msg " + role;
    div.textContent = text;
    $("chat-" + side).appendChild(div);
    return div;
  }

  function resetBattle() {
    ["a", "b"].forEach((side) => {
      $("chat-" + side).replaceChildren();
      ["reveal-", "facts-", "standing-", "verdict-"].forEach((id) => { $(id + side).textContent = ""; });
      $("side-" + side).classList.remove("winner", "tied");
    });
    Object.assign(state, { battleId: null, pending: {}, turns: 0, generating: false, voted: false });
    refreshControls();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/arena/");
    state.socket = socket;
    socket.addEventListener("open", () => {
      state.retry = 0;
      setStatus("Starting a battle…");
      socket.send(JSON.stringify({ type: "new_battle" }));
    });
    socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      const wasGenerating = state.generating;
      resetBattle();
      const delay = Math.min(10000, 500 * 2 ** state.retry++);
      setStatus((wasGenerating ? "The connection dropped during an answer. " : "Connection lost. ") +
                "Reconnecting with a new battle…", true);
      setTimeout(connect, delay);
    });
  }

  function handle(msg) {
    switch (msg.type) {
      case "battle":
        resetBattle();
        state.battleId = msg.battle_id;
        setStatus("Ask anything: two anonymous models will answer.");
        break;
      case "turn_started":
        state.awaitingTurn = false;
        state.generating = true;
        state.turns = msg.turn;
        setStatus("Both models are answering…");
        break;
      case "delta": {
        const div = state.pending[msg.side];
        if (div) div.textContent += msg.text;
        break;
      }
      case "side_done": {
        const div = state.pending[msg.side];
        if (div) {
          div.classList.remove("streaming");
          if (msg.state === "error") {
            div.classList.add("failed");
            div.textContent = msg.error || "This model failed to answer.";
          } else {
            div.innerHTML = msg.html; // sanitized on the server (arena/markdown.py)
            // Before the vote a side says only how it ended: speed and token counts would tell the sides apart.
            if (msg.state === "cancelled" || msg.finish_reason === "stopped") addMeta(div, "stopped");
            else if (msg.finish_reason === "length") addMeta(div, "… cut off at the answer length limit", "truncated");
          }
        }
        delete state.pending[msg.side];
        if (Object.keys(state.pending).length === 0) {
          state.generating = false;
          setStatus(state.turns >= maxTurns ? "Turn limit reached: please vote." :
                    "Vote, or ask a follow-up to both models.");
        }
        break;
      }
      case "turn_done":
        break;
      case "revealed":
        state.voted = true;
        ["a", "b"].forEach((side) => revealSide(side, msg["model_" + side], msg.winner));
        setStatus("Thanks for voting! " + (msg.flagged ? "(An answer named a model, so this vote won't count in the ratings.) " : "") +
                  "Press New round for a fresh pair.");
        break;
      case "error":
        if (state.awaitingTurn) {
          // The prompt was refused: take back what was optimistically shown.
          state.awaitingTurn = false;
          state.generating = false;
          ["a", "b"].forEach((side) => {
            const chat = $("chat-" + side);
            if (state.pending[side]) { state.pending[side].remove(); chat.lastElementChild && chat.lastElementChild.remove(); }
          });
          state.pending = {};
        }
        setStatus(msg.message, true);
        if (msg.code === "no_models") setTimeout(() => sendJSON({ type: "new_battle" }), 5000);
        break;
    }
    refreshControls();
  }

  const VERDICTS = { "tie": ["Tie", "tie"], "tie (bothbad)": ["Both bad", "bad"] };

  function revealSide(side, model, winner) {
    $("reveal-" + side).textContent = "· " + model.name;
    // Speeds are shown only now: before the vote they would tell the two sides apart.
    const speed = model.ttft_ms != null ? `first token ${Math.round(model.ttft_ms)} ms` +
      (model.tokens_per_s ? `, ${model.tokens_per_s.toFixed(1)} tokens/s` : "") : "";
    $("facts-" + side).textContent = [model.organization, model.license, speed].filter(Boolean).join(" · ");
    showStanding($("standing-" + side), model.standing);
    const verdict = $("verdict-" + side);
    const [text, kind] = winner === "model_" + side ? ["Winner", "win"] : (VERDICTS[winner] || ["", ""]);
    verdict.textContent = text;
    verdict.className = "verdict " + kind;
    if (kind === "win") $("side-" + side).classList.add("winner");
    if (kind === "tie" || kind === "bad") $("side-" + side).classList.add("tied");
  }

  // The side's place on the latest board, as the board shows it: a provisional model has no rank.
  function showStanding(el, standing) {
    if (!standing) {
      el.textContent = "not on the leaderboard yet";
      return;
    }
    const link = document.createElement("a");
    link.href = standing.page;
    const parts = [];
    if (standing.provisional) {
      const badge = document.createElement("span");
      badge.className = "badge provisional";
      badge.title = "Too few votes or too wide an interval for a place in the order";
      badge.textContent = "provisional";
      parts.push(badge, ", not ranked yet · ");
    } else {
      parts.push("rank " + standing.rank + " · ");
    }
    link.textContent = "rating " + standing.rating;
    parts.push(link, " (95% interval " + standing.ci_low + "–" + standing.ci_high + ") · " +
               standing.votes + (standing.votes === 1 ? " vote" : " votes"));
    el.replaceChildren(...parts);
  }

  function addMeta(div, text, kind) {
    const meta = document.createElement("div");
    meta.className = kind ? "meta " + kind : "meta";
    meta.textContent = text;
    div.appendChild(meta);
  }

  function sendJSON(obj) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(obj));
  }

  $("prompt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value;
    if (!text.trim()) { setStatus("Type a prompt first.", true); return; }
    ["a", "b"].forEach((side) => {
      addMessage(side, "user", text);
      state.pending[side] = addMessage(side, "assistant streaming", "");
    });
    state.generating = true;
    state.awaitingTurn = true;
    sendJSON({ type: "prompt", battle_id: state.battleId, text: text });
    prompt.value = "";
    refreshControls();
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("prompt-form").requestSubmit(); }
  });
  stop.addEventListener("click", () => sendJSON({ type: "stop" }));
  newRound.addEventListener("click", () => { resetBattle(); sendJSON({ type: "new_battle" }); });
  voteButtons.forEach((button) => button.addEventListener("click", () => {
    voteButtons.forEach((b) => { b.disabled = true; });
    sendJSON({ type: "vote", battle_id: state.battleId, winner: button.dataset.winner });
  }));
  document.querySelectorAll(".suggestion").forEach((button) => button.addEventListener("click", () => {
    prompt.value = button.textContent;
    prompt.focus();
  }));
  refreshControls();
  connect();
})();
