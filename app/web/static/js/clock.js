/* The live deadline clocks. The server renders every clock's text; this script only keeps it current.
 *
 * Each clock is an element with data-due (the deadline, ISO 8601 UTC) and the sentences to show,
 * data-text-due ("due in {span}") and data-text-overdue ("overdue by {span}"), rendered by the server in
 * the page's language; the units of the span come from <body data-span-*>, so nothing here is English. The time is the server's (the simulated clock may differ from the
 * browser's): <body data-now> says what the server's clock read when it rendered the page, and the
 * difference to the browser's clock is kept for every tick. Ticks every 30 seconds.
 */
(function () {
  "use strict";

  var TICK_MS = 30000;
  var SOON_MS = 4 * 3600000;
  var STATES = ["deadline-ok", "deadline-soon", "deadline-overdue", "overdue"];

  var serverNow = Date.parse(document.body.getAttribute("data-now"));
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

  /* The units in the page's language, from <body data-span-*> (app/web/filters.py duration_words); the
     English ones when a page has none. */
  var body = document.body;
  function words(name, fallback) { return body.getAttribute("data-span-" + name) || fallback; }
  var UNITS = {
    lessThanMinute: words("less-than-minute", "less than 1 min"),
    daysHours: words("days-hours", "{days} d {hours} h"),
    days: words("days", "{days} d"),
    hours: words("hours", "{hours} h"),
    minutes: words("minutes", "{minutes} min")
  };
  function fill(template, values) {
    return template.replace(/\{(days|hours|minutes)\}/g, function (_, name) { return String(values[name]); });
  }

  /* A span as the server writes it (app/web/filters.py format_duration): 3 h 20 min, 45 min, 2 d 5 h. */
  function span(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    if (minutes < 1) { return UNITS.lessThanMinute; }
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    if (days >= 2) { return fill(hours ? UNITS.daysHours : UNITS.days, {days: days, hours: hours}); }
    hours += days * 24;
    var parts = hours ? [fill(UNITS.hours, {hours: hours})] : [];
    if (mins || !hours) { parts.push(fill(UNITS.minutes, {minutes: mins})); }
    return parts.join(" ");
  }

  function stateOf(left) {
    if (left <= 0) { return ["deadline-overdue", "overdue"]; }
    return [left < SOON_MS ? "deadline-soon" : "deadline-ok"];
  }

  function update(el, current) {
    var left = Date.parse(el.getAttribute("data-due")) - current;
    if (isNaN(left)) { return; }
    var template = el.getAttribute(left > 0 ? "data-text-due" : "data-text-overdue");
    if (template) { el.textContent = template.replace("{span}", span(left)); }
    STATES.forEach(function (name) { el.classList.remove(name); });
    stateOf(left).forEach(function (name) { el.classList.add(name); });
  }

  function tick() {
    var current = Date.now() + skew;
    Array.prototype.forEach.call(document.querySelectorAll("[data-due]"), function (el) { update(el, current); });
  }

  window.setInterval(tick, TICK_MS);
})();
