// The runs list refreshes itself: every 5 s while a run is live, every 30 s otherwise.
(() => {
  "use strict";
  let live = document.body.dataset.live === "1";
  async function refresh() {
    if (!document.hidden) {
      try {
        const r = await fetch("/api/runs");
        if (r.ok) {
          const j = await r.json();
          document.getElementById("runs").innerHTML = j.rows_html;
          live = j.runs.some((x) => x.live);
          const none = document.getElementById("none");
          if (none && j.runs.length) none.remove();
        }
      } catch (e) {
        /* the server is restarting; try again later */
      }
    }
    setTimeout(refresh, live ? 5000 : 30000);
  }
  setTimeout(refresh, live ? 5000 : 30000);
})();
