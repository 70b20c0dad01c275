// A click on a service shows its panel without reloading the page (the links work without
// this script too).
(() => {
  "use strict";
  const detail = document.getElementById("detail");
  const CLASSES = ["h-sel", "h-down", "h-degraded", "h-needs", "h-optional"];
  async function show(name) {
    const r = await fetch("/api/graph/" + encodeURIComponent(name));
    const j = await r.json();
    if (!r.ok) {
      detail.textContent = j.error || "error";
      return;
    }
    detail.innerHTML = j.html;
    const mark = new Map();
    for (const [list, c] of [[j.optional, "h-optional"], [j.needs, "h-needs"], [j.degraded, "h-degraded"], [j.down, "h-down"]])
      for (const n of list) mark.set(n, c);
    mark.set(name, "h-sel");
    document.querySelectorAll("a[data-svc]").forEach((a) => {
      a.classList.remove(...CLASSES);
      const c = mark.get(a.dataset.svc);
      if (c) a.classList.add(c);
    });
    history.replaceState(null, "", "/graph?service=" + encodeURIComponent(name));
  }
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[data-svc]");
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    show(a.dataset.svc);
  });
})();
