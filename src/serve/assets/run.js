// The live run page. The server rendered everything; this applies the deltas of the event
// stream in place (one row, one approval item, the counts), ticks the clocks, and approves.
(() => {
  "use strict";
  const B = document.body, D = B.dataset;
  // Correct a client clock that is off from the server's, not the page's load time.
  const skew = +D.now - Date.now();
  const runId = D.run, t0 = +D.t0, amber = +D.amber, offset = Math.abs(skew) > 2000 ? skew : 0;
  let seq = +D.seq, head = JSON.parse(D.head);
  const $ = (id) => document.getElementById(id);
  const table = $("svc"), wl = $("wl"), waiting = $("waiting"), log = $("log");
  const rows = new Map(), waits = new Map();
  // Clocks tick only in the rows on screen: a 2 000-service run must not rewrite 2 000
  // countdowns every half second.
  const visible = new Set();
  const io = new IntersectionObserver((entries) => {
    const now = nowS();
    for (const e of entries) {
      if (e.isIntersecting) {
        visible.add(e.target);
        tickRow(e.target, now);
      } else visible.delete(e.target);
    }
  });
  document.querySelectorAll("tr[data-svc]").forEach((r) => {
    rows.set(r.dataset.svc, r);
    io.observe(r);
  });
  document.querySelectorAll("#wl li[data-w]").forEach((l) => waits.set(l.dataset.w, l));
  let scale = parseFloat(table.style.getPropertyValue("--scale")) || 60;

  const nowS = () => (head.frozen ? head.end_s : (Date.now() + offset - t0) / 1000);
  // The reports' durations (report::fmt::fmt_secs_fit): 1h2m3s, 4m5s, 12.3s, 1.25s, rounded to
  // the precision that fits the value (whole seconds from a minute, tenths from ten seconds).
  function fmt(s) {
    let ms = Math.round(Math.abs(s) * 1000);
    const u = ms >= 60000 ? 1000 : ms >= 10000 ? 100 : 1;
    ms = Math.round(ms / u) * u;
    const h = Math.floor(ms / 3600000), m = Math.floor((ms % 3600000) / 60000);
    const sec = Math.floor((ms % 60000) / 1000), f = ms % 1000;
    let b = (h ? h + "h" : "") + (m ? m + "m" : "");
    if (f) b += sec + "." + String(f).padStart(3, "0").replace(/0+$/, "") + "s";
    else if (sec || (!h && !m)) b += sec + "s";
    return (s < 0 && ms ? "-" : "") + b;
  }
  function frag(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  }

  // --- clocks -------------------------------------------------------------------------------
  function tickRow(r, now) {
    const d = r.dataset, st = d.st;
    const a = parseFloat(d.a), b = parseFloat(d.b);
    if (!isNaN(a) && isNaN(b)) {
      r.cells[3].textContent = fmt(Math.floor(Math.max(0, now - a)));
      const bar = r.querySelector("i[data-live]");
      if (bar) bar.style.setProperty("--b", Math.max(a, now).toFixed(1));
    }
    const rto = parseFloat(d.rto);
    if (isNaN(rto) || st === "recovered" || st === "skipped") return;
    const cell = r.cells[4], left = rto - now;
    let cls, text;
    if (left <= 0 || cell.classList.contains("rto-red")) {
      cls = "rto-red";
      text = "BREACHED " + fmt(Math.floor(Math.max(0, -left))) + " ago";
    } else {
      cls = left <= rto * amber ? "rto-amber" : "rto-ok";
      text = fmt(Math.ceil(left)) + " left";
    }
    if (cell.textContent !== text) cell.textContent = text;
    if (!cell.classList.contains(cls)) cell.className = "rto " + cls;
  }
  function setScale(s) {
    scale = s;
    table.style.setProperty("--scale", String(Math.round(s)));
    const spans = table.querySelectorAll(".axis span");
    spans.forEach((sp, i) => {
      const t = (s * i) / (spans.length - 1);
      sp.style.setProperty("--a", String(t));
      sp.textContent = fmt(Math.round(t));
    });
  }
  function tick() {
    const now = nowS();
    if (now > scale * 0.97) setScale(now * 1.25);
    $("h-elapsed").textContent = fmt(Math.round(Math.max(0, now)));
    visible.forEach((r) => tickRow(r, now));
  }

  // --- deltas -------------------------------------------------------------------------------
  function setHead(h, liveText) {
    head = h;
    document.querySelectorAll("[data-h]").forEach((el) => {
      const v = h[el.dataset.h];
      if (v !== undefined && el.textContent !== String(v)) el.textContent = String(v);
    });
    const s = $("h-state");
    s.textContent = h.state;
    s.className = "st st-" + h.state;
    if (liveText !== undefined) {
      $("h-live").textContent = liveText
        ? "runner: " + liveText
        : h.state === "running" || h.state === "interrupted"
          ? "no live runner: meeseeks resume continues it"
          : "";
    }
  }
  let queue = [], scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    // One DOM pass per frame however many events arrived; hidden tabs still catch up.
    if (document.hidden) setTimeout(apply, 100);
    else requestAnimationFrame(apply);
  }
  function apply() {
    scheduled = false;
    const q = queue;
    queue = [];
    const lastRow = new Map(), lastWait = new Map(), lines = [];
    let h = null, liveText, error;
    for (const d of q) {
      if (d.reload) return location.reload();
      if (d.head) h = d.head;
      if ("live_text" in d) liveText = d.live_text;
      if (d.error) error = d.error;
      if (d.row !== undefined) {
        lastRow.set(d.service, d.row);
        lastWait.set(d.service, d.wait || "");
      }
      if (d.log) lines.push(d.log);
    }
    const now = nowS();
    for (const [name, html] of lastRow) {
      const n = frag(html), old = rows.get(name);
      if (old) {
        io.unobserve(old);
        if (visible.delete(old)) visible.add(n);
        old.replaceWith(n);
      } else {
        const bodies = table.querySelectorAll("tbody");
        bodies[bodies.length - 1].appendChild(n);
      }
      rows.set(name, n);
      io.observe(n);
      tickRow(n, now);
    }
    for (const [name, html] of lastWait) {
      const old = waits.get(name);
      if (!html) {
        if (old) old.remove();
        waits.delete(name);
      } else {
        const n = frag(html);
        if (old) old.replaceWith(n);
        else wl.appendChild(n);
        waits.set(name, n);
      }
    }
    waiting.classList.toggle("empty", waits.size === 0);
    if (h) setHead(h, liveText);
    if (error) $("h-conn").textContent = "journal problem: " + error;
    for (const l of lines) {
      const li = document.createElement("li");
      li.textContent = l;
      log.prepend(li);
    }
    while (log.children.length > 40) log.lastElementChild.remove();
  }

  // --- the stream ---------------------------------------------------------------------------
  const conn = $("h-conn");
  function connect() {
    const es = new EventSource(`/runs/${encodeURIComponent(runId)}/events?after=${seq}`);
    es.onopen = () => {
      conn.textContent = "live";
      conn.className = "conn live";
    };
    es.onmessage = (e) => {
      const d = JSON.parse(e.data);
      if (d.seq) seq = d.seq;
      queue.push(d);
      schedule();
    };
    es.addEventListener("head", (e) => {
      queue.push(JSON.parse(e.data));
      schedule();
    });
    es.addEventListener("reload", () => location.reload());
    es.onerror = () => {
      conn.textContent = "reconnecting…";
      conn.className = "conn";
      // The browser retries by itself (sending Last-Event-ID) unless the server refused.
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    };
  }
  connect();
  tick();
  setInterval(tick, 500);

  // --- approvals ----------------------------------------------------------------------------
  const byIn = $("by"), tokIn = $("tok"), tokbox = $("tokbox");
  byIn.value = localStorage.getItem("meeseeks.by") || "";
  byIn.addEventListener("change", () => localStorage.setItem("meeseeks.by", byIn.value.trim()));
  tokIn.value = sessionStorage.getItem("meeseeks.token") || "";
  async function approve(btn) {
    const li = btn.closest("li"), msg = li.querySelector(".msg");
    const by = byIn.value.trim();
    if (!by) {
      msg.textContent = "type your name above first";
      byIn.focus();
      return;
    }
    localStorage.setItem("meeseeks.by", by);
    const headers = { "Content-Type": "application/json" };
    const tok = tokIn.value.trim();
    if (tok) {
      headers.Authorization = "Bearer " + tok;
      sessionStorage.setItem("meeseeks.token", tok);
    }
    btn.disabled = true;
    msg.textContent = "approving…";
    try {
      const r = await fetch(`/api/runs/${encodeURIComponent(runId)}/approve`, {
        method: "POST",
        headers,
        body: JSON.stringify({ service: btn.dataset.svc, step: btn.dataset.step, by }),
      });
      const j = await r.json().catch(() => ({}));
      if (r.ok) {
        li.classList.add("done");
        msg.textContent = "approved by " + j.by + "; the runner continues within a second";
      } else {
        btn.disabled = false;
        msg.textContent = j.error || r.status + " " + r.statusText;
        if (r.status === 401) {
          tokbox.hidden = false;
          tokIn.focus();
        }
      }
    } catch (e) {
      btn.disabled = false;
      msg.textContent = "network error: " + e;
    }
  }
  wl.addEventListener("click", (e) => {
    const btn = e.target.closest("button.approve");
    if (btn) approve(btn);
  });
})();
