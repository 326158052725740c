// The staff platform page: its numbers are re-read from the server every few seconds.
const root = document.getElementById("platform-live");
const EVERY_MS = 5_000;

if (root) {
  setInterval(async () => {
    if (document.hidden) return;
    const response = await fetch(root.dataset.refreshUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    root.replaceChildren(template.content);
  }, EVERY_MS);
}
