// casegrid workbench: small behaviours on server-rendered pages (no build step).
(function () {
  "use strict";
  // A whole row opens its case (the case number stays a real link for the keyboard).
  document.addEventListener("click", function (ev) {
    var row = ev.target.closest("tr.row[data-href]");
    if (!row || ev.target.closest("a, input, button, label, select, textarea")) return;
    window.location.href = row.getAttribute("data-href");
  });
  // "Select all" on a work list.
  document.addEventListener("change", function (ev) {
    if (!ev.target.matches("[data-select-all]")) return;
    var boxes = document.querySelectorAll('#bulk-form input[name="case"]');
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = ev.target.checked;
  });
  // A bulk button with nothing selected says so instead of posting an empty form.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.id === "bulk-form" && !form.querySelector('input[name="case"]:checked')) {
      ev.preventDefault();
      alert(document.body.dataset.lang === "en" ? "Select cases first" : "请先勾选案件");
    }
  });
  // "/" jumps to the search box (unless typing somewhere).
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.target.matches("input, textarea, select")) return;
    var box = document.querySelector('.search input[name="q"]');
    if (box) { ev.preventDefault(); box.focus(); }
  });
  // A template picker (the reply's 常用回复) fills its form's text, which stays editable.
  document.addEventListener("change", function (ev) {
    var picker = ev.target.closest("select[data-fills]");
    if (!picker) return;
    var option = picker.options[picker.selectedIndex];
    var box = document.getElementById(picker.getAttribute("data-fills"));
    if (!box || !option || !option.hasAttribute("data-text")) return;
    box.value = option.getAttribute("data-text");
    box.focus();
  });
  // After a refused form, bring its first error into view.
  var bad = document.querySelector(".conflict, .has-error, form.action .field-error");
  if (bad) { bad.scrollIntoView({ block: "center" }); var f = bad.querySelector("input, textarea, select"); if (f) f.focus(); }
})();
