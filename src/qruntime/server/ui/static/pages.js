// Small helpers of the sessions and backends pages: countdown clocks and selects that
// submit their form when changed. No inline scripts (the page's CSP forbids them).
(function () {
  "use strict";
  function show(seconds) {
    if (seconds <= 0) { return "0 s"; }
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
  }
  function tick() {
    var clocks = document.querySelectorAll("[data-deadline]");
    for (var i = 0; i < clocks.length; i++) {
      var left = (Date.parse(clocks[i].getAttribute("data-deadline")) - Date.now()) / 1000;
      clocks[i].textContent = show(left) + (left <= 0 ? " (ran out)" : " left");
    }
  }
  function wire() {
    var selects = document.querySelectorAll("select[data-autosubmit]");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function (event) { event.target.form.submit(); });
    }
    tick();
    // Clocks in parts refreshed by live updates are new elements: tick finds them each time.
    window.setInterval(tick, 1000);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else { wire(); }
})();
