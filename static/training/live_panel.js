// A server-rendered panel that updates itself: the job page's progress and the dataset page's
// preview. An element with data-live-url (a staff-only JSON endpoint answering {html, finished})
// is polled every data-live-every-ms until the answer says finished; each answer's html (rendered
// by Django templates, values escaped) replaces the element's content. Once finished, the elements
// matching data-live-remove (a selector: a cancel button, a "queued" message) are removed.
// Polling works in every mode, including the embedded one without Redis.
(function () {
  "use strict";
  document.querySelectorAll("[data-live-url]").forEach((box) => {
    if (box.dataset.liveFinished === "1") return;
    const every = Number(box.dataset.liveEveryMs) || 2000;
    async function tick() {
      try {
        const response = await fetch(box.dataset.liveUrl, { credentials: "same-origin" });
        if (response.ok) {
          const data = await response.json();
          box.innerHTML = data.html;
          if (data.finished) {
            if (box.dataset.liveRemove) document.querySelectorAll(box.dataset.liveRemove).forEach((el) => el.remove());
            return;
          }
        }
      } catch (e) { /* the next tick retries */ }
      setTimeout(tick, every);
    }
    setTimeout(tick, every);
  });
})();
