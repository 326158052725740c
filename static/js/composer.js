// The announcement composer's live preview: the banner as members will see it.
// The body is rendered by the server (the same sanitiser as the real banner), debounced.
const form = document.getElementById("composer");
const preview = document.getElementById("composer-preview");

function csrfToken() {
  return form.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

function value(name) {
  const field = form.elements.namedItem(name);
  if (!field) return "";
  if (field.type === "checkbox") return field.checked;
  return field.value;
}

let timer = null;
let lastBody = null;

async function renderBody() {
  const body = value("body");
  if (body === lastBody) return;
  lastBody = body;
  const data = new FormData();
  data.append("body", body);
  const response = await fetch(form.dataset.previewUrl, {
    method: "POST",
    body: data,
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  });
  if (response.ok && body === value("body")) {
    preview.querySelector(".announcement-body").innerHTML = (await response.json()).html; // sanitised by the server
  }
}

function update() {
  const severity = value("severity") || "info";
  preview.className = `announcement announcement-${severity}`;
  preview.dataset.severity = severity;
  preview.querySelector(".announcement-badge").textContent = severity.charAt(0).toUpperCase() + severity.slice(1);
  preview.querySelector(".announcement-title").textContent = value("title") || "Title";
  const dismissable = severity !== "critical" && value("dismissable");
  const dismissableField = form.elements.namedItem("dismissable");
  if (dismissableField) dismissableField.disabled = severity === "critical";
  preview.querySelector(".announcement-dismiss").hidden = !dismissable;
  const style = value("style") === "modal" ? "Shown once as a modal, then" : "Shown as a banner on every page";
  document.getElementById("composer-preview-style").textContent =
    `${style}${value("style") === "modal" ? (dismissable ? " gone." : " as a banner until it ends.") : "."}`;
  clearTimeout(timer);
  timer = setTimeout(renderBody, 250);
}

// The server speaks UTC; the admin types and reads their own zone, which the labels name.
const pad = (n) => String(n).padStart(2, "0");
const localValue = (d) =>
  `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
const utcValue = (d) =>
  `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;

function useLocalTime() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const inputs = [...form.querySelectorAll('input[type="datetime-local"]')];
  for (const input of inputs) {
    if (input.value) input.value = localValue(new Date(`${input.value}Z`));
    const label = form.querySelector(`label[for="${input.id}"]`);
    if (label) label.textContent = label.textContent.replace("(UTC)", `(${zone})`);
  }
  form.addEventListener("submit", () => {
    for (const input of inputs) {
      if (!input.name) continue;
      const hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = input.name;
      // "YYYY-MM-DDTHH:MM" without a zone is read as the browser's local time.
      hidden.value = input.value ? utcValue(new Date(input.value)) : "";
      input.removeAttribute("name");
      form.append(hidden);
    }
  });
}

if (form && preview) {
  useLocalTime();
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
}
