// casegrid workbench: the photo inputs of the case page. The server checks every file again
// (its type from the content, its size, how many) and names any file it refuses; this
// only spares an officer on a slow connection sending 30 MB to be told so, and keeps a
// second tap from sending the form twice while the photos upload.
(function () {
  "use strict";
  var SEL = "input[type=file][data-max-bytes]";

  function typeOk(input, file) {
    if (!file.type) return true; // unknown to this browser (HEIC on some systems): the server decides
    if (file.type.indexOf("image/") === 0) return true;
    return file.type === "application/pdf" && (input.accept || "").indexOf("application/pdf") >= 0;
  }

  function show(input, messages) {
    var box = input.parentNode.querySelector(".js-file-error");
    if (!box) {
      box = document.createElement("p");
      box.className = "field-error js-file-error";
      box.setAttribute("role", "alert");
      input.parentNode.appendChild(box);
    }
    box.textContent = messages.join(" ");
    box.hidden = messages.length === 0;
    input.parentNode.classList.toggle("has-error", messages.length > 0);
    if (messages.length) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function check(input) {
    var files = input.files || [], messages = [];
    if (files.length > Number(input.dataset.maxFiles)) messages.push(input.dataset.msgCount);
    for (var i = 0; i < files.length; i++) {
      var file = files[i];
      if (file.size > Number(input.dataset.maxBytes)) messages.push(input.dataset.msgSize.replace("{f}", file.name));
      else if (!typeOk(input, file)) messages.push(input.dataset.msgType.replace("{f}", file.name));
    }
    show(input, messages);
    return messages.length === 0;
  }

  document.addEventListener("change", function (ev) {
    if (ev.target.matches(SEL)) check(ev.target);
  });
  document.addEventListener("submit", function (ev) {
    var form = ev.target, inputs = form.querySelectorAll(SEL);
    for (var i = 0; i < inputs.length; i++) {
      if (!check(inputs[i])) { ev.preventDefault(); inputs[i].focus(); return; }
    }
    if (!inputs.length || form.dataset.sending) { if (form.dataset.sending) ev.preventDefault(); return; }
    form.dataset.sending = "1";
    var button = form.querySelector("button[type=submit]");
    if (button) button.setAttribute("aria-busy", "true");
  });
  // Back to a page from the history: its forms may be sent again.
  window.addEventListener("pageshow", function () {
    var sent = document.querySelectorAll("form[data-sending]");
    for (var i = 0; i < sent.length; i++) delete sent[i].dataset.sending;
  });
})();
