/* The case page's process diagram: fetch the pinned version's BPMN and the element states from
   GET /api/cases/<id>/diagram, draw it with the bpmn-js navigated viewer (served by the app from npm),
   mark each element done / active / waiting, and fit it to the view. When everything is drawn the
   container gets data-state="ready" (the browser tests wait for it); on failure data-state="error" and
   the status line says why. No inline script: the page's CSP allows only files like this one. */
(function () {
  "use strict";

  var container = document.getElementById("case-diagram");
  if (!container) { return; }
  var status = document.getElementById("case-diagram-status");
  var STATES = ["done", "active", "waiting"];
  var STEP = 1.25;  // zoom factor per button press or key

  /* The sentences of the status line, in the page's language (data-text-* of the container, written by
     the server); {names}, {count}, {reason} and {status} are filled in here. */
  function text(name, values) {
    var template = container.getAttribute("data-text-" + name) || "";
    return template.replace(/\{(\w+)\}/g, function (whole, key) {
      return values && key in values ? String(values[key]) : whole;
    });
  }

  function report(text, state) {
    if (status) { status.textContent = text; }
    container.setAttribute("data-state", state);
  }

  if (typeof window.BpmnJS !== "function") {
    report(text("viewer-missing"), "error");
    return;
  }

  var viewer = new window.BpmnJS({ container: container });
  var canvas = viewer.get("canvas");

  function fit() {
    canvas.zoom("fit-viewport", "auto");
  }

  function zoomBy(factor) {
    canvas.zoom(canvas.zoom() * factor);
  }

  function nameOf(element) {
    var bo = element.businessObject || {};
    return bo.name || element.id;
  }

  function mark(states) {
    var registry = viewer.get("elementRegistry");
    var named = { done: [], active: [], waiting: [] };
    Object.keys(states).forEach(function (id) {
      var state = states[id];
      var element = registry.get(id);
      if (!element || STATES.indexOf(state) < 0) { return; }  // an id this drawing lacks: nothing to mark
      canvas.addMarker(id, state);
      named[state].push(nameOf(element));
    });
    return named;
  }

  function summary(named) {
    var parts = [];
    var separator = text("separator");
    if (named.active.length) { parts.push(text("active", {names: named.active.join(separator)})); }
    if (named.waiting.length) { parts.push(text("waiting", {names: named.waiting.join(separator)})); }
    parts.push(named.done.length === 1 ? text("done-one") : text("done-many", {count: named.done.length}));
    if (!named.active.length && !named.waiting.length) { parts.unshift(text("nothing-open")); }
    return parts.join(" ");
  }

  function fail(error) {
    report(text("failed", {reason: error && error.message ? error.message : error}), "error");
  }

  fetch(container.getAttribute("data-source"), {
    credentials: "same-origin",
    headers: { "Accept": "application/json" }
  }).then(function (response) {
    return response.json().catch(function () { return {}; }).then(function (body) {
      if (!response.ok) {
        throw new Error(body.message || text("server", {status: response.status}));
      }
      return body;
    });
  }).then(function (body) {
    return viewer.importXML(body.bpmn_xml).then(function () {
      var named = mark(body.states || {});
      fit();
      report(summary(named), "ready");
    });
  }).catch(fail);

  // Buttons: fit, zoom in, zoom out (large touch targets for phones).
  Array.prototype.forEach.call(document.querySelectorAll("[data-diagram-action]"), function (button) {
    button.addEventListener("click", function () {
      var action = button.getAttribute("data-diagram-action");
      if (action === "fit") { fit(); }
      if (action === "zoom-in") { zoomBy(STEP); }
      if (action === "zoom-out") { zoomBy(1 / STEP); }
    });
  });

  // Keyboard: the diagram is focusable; arrows move it, + / - zoom, 0 fits.
  container.setAttribute("tabindex", "0");
  container.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }  // handled already
    var step = 60;
    var moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (moves[event.key]) {
      canvas.scroll({ dx: moves[event.key][0], dy: moves[event.key][1] });
    } else if (event.key === "+" || event.key === "=") {
      zoomBy(STEP);
    } else if (event.key === "-" || event.key === "_") {
      zoomBy(1 / STEP);
    } else if (event.key === "0") {
      fit();
    } else {
      return;
    }
    event.preventDefault();
  });

  // A phone turned sideways, a window resized: keep the whole process in view.
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      if (container.getAttribute("data-state") === "ready") { fit(); }
    }, 200);
  });
})();
