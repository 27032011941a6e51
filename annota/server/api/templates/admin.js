// annota's dashboard: redraw the live part every second; POST the buttons' actions
// with the session's CSRF token. Nothing is fetched from anywhere but this server.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const live = document.getElementById("live");
  const message = document.getElementById("message");

  async function refresh() {
    try {
      const response = await fetch("/admin/live", {credentials: "same-origin"});
      if (response.status === 401 || response.status === 403) { window.location = "/admin/login"; return; }
      if (response.ok) { live.innerHTML = await response.text(); }
    } catch (e) { message.textContent = "the server does not answer; retrying"; }
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-post]");
    if (!button) { return; }
    event.preventDefault();
    const body = {};
    if (button.dataset.name) { body.name = button.dataset.name; }
    if (button.dataset.dataset) { body.dataset_id = button.dataset.dataset; }
    if (button.dataset.limit) {
      body.limit = parseInt(document.querySelector('[data-limit-of="' + button.dataset.name + '"]').value, 10);
    }
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.post, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify(body)});
      const answer = await response.json().catch(() => ({}));
      message.textContent = response.ok ? button.textContent + ": done" :
        button.textContent + ": " + (answer.detail ? JSON.stringify(answer.detail) : response.status);
    } finally {
      button.disabled = false;
      refresh();
    }
  });
  setInterval(refresh, 1000);
}());
