// The jobs page: live progress bars. Rows are rendered by the server; this module
// keeps them moving from `job.state` (durable, replayed) and `job.progress`
// (ephemeral ticks) events, and from the snapshot a socket gets on connect.
import { live } from "./realtime.js";

const table = document.getElementById("jobs");
const tbody = table ? table.querySelector("tbody") : null;
const tenant = table ? table.dataset.tenant : null;
const template = document.getElementById("job-row-template");
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const STATE_TEXT = {
  queued: "Queued",
  running: "Running",
  cancelling: "Cancelling",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};
let clockOffsetMs = 0; // browser clock minus server clock, from event timestamps

function field(row, name) {
  return row.querySelector(`[data-field="${name}"]`);
}

function findRow(id) {
  return tbody ? tbody.querySelector(`tr[data-job-id="${id}"]`) : null;
}

function createRow(data) {
  if (!template || !tbody) return null;
  const row = template.content.firstElementChild.cloneNode(true);
  row.dataset.jobId = String(data.id);
  row.id = `job-${data.id}`;
  row.classList.add("job-new");
  row.dataset.url = data.url;
  field(row, "label").href = data.url;
  row.querySelector('[data-action="cancel"]').action = `${data.url}cancel/`;
  row.querySelector('[data-action="retry"]').action = `${data.url}retry/`;
  tbody.prepend(row);
  const empty = document.getElementById("jobs-empty");
  if (empty) empty.hidden = true;
  return row;
}

function formatSeconds(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function render(row) {
  const state = row.dataset.state;
  const done = Number(row.dataset.done) || 0;
  const total = row.dataset.total === "" ? null : Number(row.dataset.total);
  let percent = total ? Math.min(100, Math.floor((done * 100) / total)) : null;
  if (state === "succeeded") percent = 100;
  const bar = field(row, "bar");
  if (percent === null) {
    if (FINAL.has(state)) bar.value = 0;
    else bar.removeAttribute("value"); // indeterminate while the total is unknown
  } else {
    bar.value = percent;
  }
  bar.textContent = percent === null ? "" : `${percent}%`;
  field(row, "percent").textContent = percent === null ? "" : `${percent}%`;
  field(row, "counts").textContent = total === null ? "" : `${done} / ${total}`;
  field(row, "state").textContent = STATE_TEXT[state] || state;
  row.querySelector('[data-action="cancel"]').hidden = !(state === "queued" || state === "running");
  row.querySelector('[data-action="retry"]').hidden = !(state === "failed" || state === "cancelled");
  renderTimes(row);
}

function renderTimes(row) {
  const state = row.dataset.state;
  const started = Date.parse(row.dataset.startedAt || "");
  const finished = Date.parse(row.dataset.finishedAt || "");
  const elapsedText = field(row, "elapsed");
  const etaText = field(row, "eta");
  if (Number.isNaN(started)) {
    elapsedText.textContent = "";
    etaText.textContent = "";
    return;
  }
  const end = Number.isNaN(finished) ? Date.now() - clockOffsetMs : finished;
  const elapsed = (end - started) / 1000;
  elapsedText.textContent = `elapsed ${formatSeconds(elapsed)}`;
  const done = Number(row.dataset.done) || 0;
  const total = row.dataset.total === "" ? null : Number(row.dataset.total);
  if (state === "running" && total && done > 0 && done < total && elapsed > 0) {
    etaText.textContent = `about ${formatSeconds(((total - done) * elapsed) / done)} left`;
  } else {
    etaText.textContent = "";
  }
}

/** Screen readers hear a job change state (not every tick of its bar): the page's polite region. */
function announce(text) {
  const region = document.getElementById("jobs-announcer");
  if (region) region.textContent = text;
}

function noteClock(event) {
  const serverTs = Date.parse(event.ts || "");
  if (!Number.isNaN(serverTs)) clockOffsetMs = Date.now() - serverTs;
}

function applyState(event) {
  if (event.tenant !== tenant) return;
  const data = event.data;
  let row = findRow(data.id);
  if (!row) {
    if (table.dataset.single !== undefined) return;
    row = createRow(data);
    if (!row) return;
  }
  noteClock(event);
  const attempt = Number(data.attempt) || 1;
  // A durable state event is the truth, except that a late frame of an earlier
  // attempt must not roll a re-queued job back.
  if (attempt < (Number(row.dataset.attempt) || 1)) return;
  row.dataset.attempt = String(attempt);
  const before = row.dataset.state;
  row.dataset.state = data.cancel_requested && !FINAL.has(data.state) ? "cancelling" : data.state;
  if (before !== row.dataset.state) announce(`${data.label}: ${STATE_TEXT[row.dataset.state] || row.dataset.state}`);
  row.dataset.done = String(data.done ?? 0);
  row.dataset.total = data.total === null || data.total === undefined ? "" : String(data.total);
  row.dataset.startedAt = data.started_at || "";
  row.dataset.finishedAt = data.finished_at || "";
  field(row, "label").textContent = data.label;
  field(row, "owner").textContent = data.owner;
  field(row, "message").textContent = data.message || "";
  field(row, "error").textContent = data.error || "";
  const download = field(row, "download");
  download.hidden = !data.download_url;
  if (data.download_url) download.href = data.download_url;
  render(row);
}

function applyProgress(event) {
  if (event.tenant !== tenant) return;
  const data = event.data;
  const row = findRow(data.id);
  if (!row) return;
  noteClock(event);
  const state = row.dataset.state;
  if (FINAL.has(state)) return; // the final state already arrived; a late tick changes nothing
  if ((Number(data.attempt) || 1) !== (Number(row.dataset.attempt) || 1)) return;
  // Parallel parts may deliver ticks out of order: the bar never moves backwards.
  if (Number(data.done) < Number(row.dataset.done) && String(data.total ?? "") === row.dataset.total) return;
  if (state === "queued") row.dataset.state = "running";
  row.dataset.done = String(data.done ?? 0);
  row.dataset.total = data.total === null || data.total === undefined ? "" : String(data.total);
  if (data.started_at) row.dataset.startedAt = data.started_at;
  field(row, "message").textContent = data.message || "";
  render(row);
}

if (table && live) {
  for (const row of tbody.querySelectorAll("tr.job")) render(row);
  live.on("job.state", applyState);
  live.on("job.progress", applyProgress);
  setInterval(() => {
    for (const row of tbody.querySelectorAll('tr.job[data-state="running"], tr.job[data-state="cancelling"]')) {
      renderTimes(row);
    }
  }, 1000);
}
