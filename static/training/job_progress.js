// Live job page: polls the staff-only progress endpoint and swaps in the server-rendered panel.
// Polling works in every mode, including the embedded one without Redis.
(function () {
  "use strict";
  const box = document.getElementById("job-progress");
  if (!box || box.dataset.finished === "1") return;
  async function tick() {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        box.innerHTML = data.html; // rendered by Django templates, values escaped
        if (data.finished) {
          const cancel = document.getElementById("cancel-job");
          if (cancel) cancel.closest("form").remove();
          // "Job N queued on the training queue" was true at launch, not any more.
          document.querySelectorAll("ul.messagelist li.info").forEach((li) => li.remove());
          return;
        }
      }
    } catch (e) { /* the next tick retries */ }
    setTimeout(tick, 2000);
  }
  setTimeout(tick, 2000);
})();
