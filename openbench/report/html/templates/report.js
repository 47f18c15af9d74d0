(function () {
  // Script errors are shown to the reader (and read by the browser test) instead of failing silently.
  var seen = [];
  function show() {
    var box = document.getElementById("render-errors");
    if (!box || !seen.length) return;
    box.hidden = false;
    box.textContent = "Part of this page could not be shown in this browser:\n" + seen.join("\n");
  }
  window.addEventListener("error", function (e) { seen.push(String(e.message || e)); show(); });
  document.addEventListener("DOMContentLoaded", function () {
    show();
    var section = document.getElementById("answers");
    if (!section) return;
    var cards = Array.prototype.slice.call(section.querySelectorAll(".answer"));
    var tabs = Array.prototype.slice.call(section.querySelectorAll(".tab"));
    var box = section.querySelector("input[type=search]");
    var counter = section.querySelector(".answers-count");
    var task = "";
    function apply() {
      var words = (box ? box.value : "").toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      cards.forEach(function (card) {
        var text = card.textContent.toLowerCase();
        var ok = (!task || card.getAttribute("data-task") === task) &&
          words.every(function (w) { return text.indexOf(w) >= 0; });
        card.hidden = !ok;
        shown += ok ? 1 : 0;
      });
      if (counter) counter.textContent = shown + " of " + cards.length + " shown";
    }
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () {
        task = tab.getAttribute("data-task");
        tabs.forEach(function (t) { t.setAttribute("aria-selected", String(t === tab)); });
        apply();
      });
    });
    if (box) box.addEventListener("input", apply);
    apply();
  });
})();
