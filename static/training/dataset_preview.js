// Dataset page: while the worker computes the preview, poll the staff-only preview endpoint and
// swap in the server-rendered panel once it is ready or has failed.
(function () {
  "use strict";
  const box = document.getElementById("dataset-preview");
  if (!box || box.dataset.computing !== "1") return;
  async function tick() {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        box.innerHTML = data.html; // rendered by Django templates, values escaped
        if (data.status !== "computing") return;
      }
    } catch (e) { /* the next tick retries */ }
    setTimeout(tick, 1500);
  }
  setTimeout(tick, 1500);
})();
