// Sends the answer as JSON and moves on to the next page; the form still works on its own.
(function () {
  "use strict";
  var form = document.getElementById("answer-form");
  if (!form) { return; }
  var status = document.getElementById("status");
  var buttons = form.querySelectorAll("button.answer");

  function setBusy(busy) {
    for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = busy; }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = event.submitter;
    if (!button || !button.name) { return; }
    var body = {};
    body[button.name] = button.name === "rating" ? Number(button.value) : button.value;
    setBusy(true);
    status.textContent = "Saving...";
    fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (resp) {
      return resp.json().then(function (data) { return { status: resp.status, data: data }; });
    }).then(function (r) {
      if ((r.status === 201 || r.status === 409) && r.data.next) {
        window.location.assign(r.data.next);
        return;
      }
      status.textContent = "Could not save the answer: " + (r.data.error || r.status);
      setBusy(false);
    }).catch(function (err) {
      status.textContent = "Could not reach the server (" + err + "). Please try again.";
      setBusy(false);
    });
  });
})();
