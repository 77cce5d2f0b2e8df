// Lineage graph: centre the focus node, drag to pan, Ctrl/⌘ + wheel to zoom.
// The page reads without this script; it only makes a wide graph easier to move around.
(function () {
  "use strict";
  document.querySelectorAll("[data-lineage-canvas]").forEach(function (canvas) {
    var svg = canvas.querySelector("svg");
    if (!svg) return;
    var baseWidth = svg.viewBox.baseVal.width;
    var scale = 1;

    var focus = svg.querySelector(".focus rect");
    if (focus && canvas.scrollWidth > canvas.clientWidth) {
      var box = focus.getBoundingClientRect();
      var outer = canvas.getBoundingClientRect();
      canvas.scrollLeft += box.left - outer.left - (outer.width - box.width) / 2;
    }

    var dragging = null;
    canvas.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || event.target.closest("a")) return;
      dragging = { x: event.clientX, y: event.clientY, left: canvas.scrollLeft, top: canvas.scrollTop };
      canvas.setPointerCapture(event.pointerId);
      canvas.style.cursor = "grabbing";
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!dragging) return;
      canvas.scrollLeft = dragging.left - (event.clientX - dragging.x);
      canvas.scrollTop = dragging.top - (event.clientY - dragging.y);
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      canvas.addEventListener(name, function () {
        dragging = null;
        canvas.style.cursor = "";
      });
    });

    canvas.addEventListener("wheel", function (event) {
      if (!(event.ctrlKey || event.metaKey)) return;
      event.preventDefault();
      scale = Math.min(2.5, Math.max(0.3, scale * (event.deltaY < 0 ? 1.1 : 1 / 1.1)));
      canvas.classList.add("wide");
      svg.style.width = Math.round(baseWidth * scale) + "px";
      svg.style.height = "auto";
    }, { passive: false });
  });
})();
