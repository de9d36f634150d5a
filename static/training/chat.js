// The admin's chat with one model (training/admin_studio.py): keeps the conversation here and
// sends all of it each turn; a streamed answer arrives as NDJSON lines ({"text"} … {"done"}).
(function () {
  "use strict";
  const form = document.getElementById("chat-form");
  if (!form) return;
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-input");
  const picker = document.getElementById("chat-with");
  let conversation = [];

  function bubble(kind, text) {
    const div = document.createElement("div");
    div.className = "turn " + kind;
    div.textContent = text;
    log.appendChild(div);
    return div;
  }
  function meta(box, data) {
    const span = document.createElement("div");
    span.className = "meta";
    span.textContent = `${data.model || ""} · ${data.finish_reason || ""}` +
      (data.completion_tokens != null ? ` · ${data.completion_tokens} tokens` : "");
    box.appendChild(span);
  }
  function reset() { conversation = []; log.textContent = ""; }
  document.getElementById("chat-new").addEventListener("click", reset);
  picker.addEventListener("change", reset); // one conversation, one model

  async function readStream(response, box) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", text = "", last = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 1);
        if (line.text) { text += line.text; box.firstChild.textContent = text; }
        if (line.done) last = line;
      }
    }
    return { text, ...last };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    const system = document.getElementById("chat-system").value.trim();
    if (!conversation.length && system) conversation.push({ role: "system", content: system });
    conversation.push({ role: "user", content: message });
    bubble("user", message);
    input.value = "";
    const stream = document.getElementById("chat-stream").checked;
    const box = bubble("assistant", "");
    box.appendChild(document.createTextNode(""));
    box.firstChild.textContent = "…";
    try {
      const response = await fetch(form.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
        body: JSON.stringify({ with: picker.value, messages: conversation, stream,
                               max_tokens: document.getElementById("chat-max-tokens").value }),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
        throw new Error(data.error);
      }
      const data = stream ? await readStream(response, box) : await response.json();
      box.firstChild.textContent = data.text;
      meta(box, data);
      if ((data.finish_reason || "").startsWith("error")) { box.className = "turn error"; conversation.pop(); return; }
      conversation.push({ role: "assistant", content: data.text });
    } catch (error) {
      box.className = "turn error";
      box.textContent = String(error.message || error);
      conversation.pop(); // the message was not answered: it can be sent again
    }
  });
})();
