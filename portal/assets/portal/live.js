// Live updates over one websocket: job rows and progress, notifications, deployments.
// Subscriptions follow the page: every element with data-live-vault / data-live-job asks for
// its group; the server admits only what the user may see. A dropped socket reconnects and
// the page catches up from stored state by reloading its live parts.
(function () {
  "use strict";
  const labels = JSON.parse(document.getElementById("live-labels")?.textContent || "{}");
  let socket = null;
  let retry = 500;
  let connectedOnce = false;

  function subscriptions() {
    const wanted = new Set();
    for (const el of document.querySelectorAll("[data-live-vault]")) wanted.add("vault:" + el.dataset.liveVault);
    for (const el of document.querySelectorAll("[data-live-refresh]")) wanted.add("vault:" + el.dataset.liveRefresh);
    for (const el of document.querySelectorAll("[data-live-job]")) wanted.add("job:" + el.dataset.liveJob);
    return [...wanted].map((key) => { const [kind, id] = key.split(":"); return { subscribe: kind, id }; });
  }

  // The page counts as live once the server has answered every subscription.
  let awaiting = new Set();
  function subscribeAll() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const wanted = subscriptions();
    awaiting = new Set(wanted.map((m) => m.subscribe + ":" + m.id));
    if (!awaiting.size) document.body.dataset.live = "connected";
    for (const message of wanted) socket.send(JSON.stringify(message));
  }

  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  function stateIcon(state) {
    return { completed: "ok", completed_with_warnings: "warn", failed: "fail", in_progress: "progress" }[state] || "info";
  }

  function progressText(job) {
    if (job.state !== "in_progress") return bytes(job.bytes_scanned);
    const parts = [(labels.phases || {})[job.phase] || job.phase];
    if (job.percent !== null && job.percent !== undefined) parts.push(job.percent + "%");
    if (job.rate_bps) parts.push(bytes(job.rate_bps) + "/s");
    if (job.eta_seconds) parts.push(labels.eta + " " + job.eta_seconds + " " + labels.seconds);
    return parts.join(" · ");
  }

  function fillRow(row, job) {
    const state = row.querySelector("[data-field=state]");
    if (state) {
      state.innerHTML = '<span class="state" data-state="' + job.state + '"><svg class="icon"><use href="#i-' +
        stateIcon(job.state) + '"/></svg><span class="state-word"></span></span>';
      state.querySelector(".state-word").textContent = (labels.states || {})[job.state] || job.state;
    }
    const bar = row.querySelector(".progress-bar");
    if (bar) {
      const known = job.percent !== null && job.percent !== undefined;
      bar.classList.toggle("indeterminate", !known && job.state === "in_progress");
      bar.style.width = (known ? job.percent : 100) + "%";
      bar.parentElement.setAttribute("aria-valuenow", known ? job.percent : 0);
    }
    const text = row.querySelector("[data-field=progress-text]");
    if (text) text.textContent = progressText(job);
    const phase = row.querySelector("[data-field=phase]");
    if (phase) phase.textContent = (labels.phases || {})[job.phase] || job.phase;
    const files = row.querySelector("[data-field=files_done]");
    if (files) files.textContent = job.files_done.toLocaleString();
    for (const field of ["bytes_scanned", "bytes_uploaded"]) {
      const el = row.querySelector("[data-field=" + field + "]");
      if (el) el.textContent = bytes(job[field]);
    }
  }

  function onJob(job) {
    for (const table of document.querySelectorAll("table[data-live-vault='" + job.vault + "']")) {
      if (table.dataset.liveMachine && table.dataset.liveMachine !== job.machine) continue;
      let row = table.querySelector("tr[data-job='" + job.id + "']");
      if (!row) {
        const template = document.getElementById("job-row-template");
        if (!template) continue;
        row = template.content.firstElementChild.cloneNode(true);
        row.dataset.job = job.id;
        row.querySelector("[data-field=machine]").textContent = job.machine;
        const kind = row.querySelector("[data-field=kind]");
        const link = document.createElement("a");
        link.href = "/jobs/" + job.id + "/";
        link.dataset.blade = "";
        link.textContent = job.kind_label;
        kind.replaceChildren(link, " (" + job.trigger_label + ")");
        row.querySelector("[data-field=started]").textContent = new Date(job.started_at).toLocaleString();
        table.querySelector("tr.empty-row")?.remove();
        table.tBodies[0].prepend(row);
      }
      fillRow(row, job);
    }
    for (const detail of document.querySelectorAll("[data-live-job='" + job.id + "']")) fillRow(detail, job);
  }

  // Summaries (server lists, counters, alerts) re-render from the server when their vault
  // changes, at most once a second, and every minute so "online" turns "offline" on time.
  let refreshTimer = null;
  function refreshSummaries() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      const blade = document.querySelector("#blades > .blade:last-child");
      if (!blade || !blade.querySelector("[data-live-refresh]")) return;
      window.BackupPortal.fetchBlade(blade.dataset.bladeUrl).then(({ blade: fresh }) => {
        const current = document.querySelector("#blades > .blade:last-child");
        if (fresh && current && current.dataset.bladeUrl === fresh.dataset.bladeUrl) {
          for (const part of fresh.querySelectorAll("[data-live-refresh]")) {
            const old = current.querySelector("[data-live-refresh='" + part.dataset.liveRefresh + "'][id='" + part.id + "']");
            if (old) old.replaceWith(part);
          }
        }
      });
    }, 1000);
  }
  function maybeRefresh(kind, payload) {
    const vault = kind === "vault" ? payload.id : payload.vault;
    if (!document.querySelector("[data-live-refresh='" + vault + "']")) return;
    if (kind === "job" && payload.state === "in_progress" && payload.phase !== "starting") return;
    refreshSummaries();
  }
  setInterval(() => { if (document.querySelector("[data-live-refresh]")) refreshSummaries(); }, 60000);

  function onNotification(note) {
    const badge = document.getElementById("bell-count");
    if (badge) {
      badge.textContent = String((parseInt(badge.textContent, 10) || 0) + 1);
      badge.hidden = false;
    }
    if (window.BackupPortal) window.BackupPortal.toast(note.title, note.body);
    document.body.dispatchEvent(new CustomEvent("bp:notification", { detail: note }));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/events/");
    socket.addEventListener("open", () => {
      retry = 500;
      subscribeAll();
      if (connectedOnce) document.body.dispatchEvent(new CustomEvent("bp:reconnected"));
      connectedOnce = true;
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.subscribed) {
        awaiting.delete(message.subscribed + ":" + message.id);
        if (!awaiting.size) document.body.dataset.live = "connected";
        return;
      }
      if (message.kind === "job") onJob(message.payload);
      else if (message.kind === "notification") onNotification(message.payload);
      else if (message.kind === "vault") document.body.dispatchEvent(new CustomEvent("bp:vault", { detail: message.payload }));
      if (message.kind && message.payload) maybeRefresh(message.kind, message.payload);
    });
    socket.addEventListener("close", (event) => {
      document.body.dataset.live = "disconnected";
      if (event.code === 4401) return;  // signed out
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  // After a reconnect, what happened meanwhile is in the database: reload the live parts.
  document.body.addEventListener("bp:reconnected", () => {
    const blade = document.querySelector("#blades > .blade:last-child");
    if (blade && blade.querySelector("[data-live-vault], [data-live-job]")) {
      window.BackupPortal.fetchBlade(blade.dataset.bladeUrl).then(({ blade: fresh }) => {
        if (fresh) { blade.replaceWith(fresh); subscribeAll(); }
      });
    }
  });

  // Blades opened later bring their own live elements.
  new MutationObserver(() => subscribeAll()).observe(document.getElementById("blades"), { childList: true });
  if (document.body.dataset.user) connect();
  window.BackupPortalLive = { subscribeAll };
})();
