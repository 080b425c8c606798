/* The new-case page: find the caller's equipment as you type.
 *
 * Turns the search field into an ARIA combobox with a listbox of matches from /api/registry/equipment
 * (arrow keys move, Enter chooses, Escape closes). Choosing puts the equipment, with its warranty and any
 * case still open for it, into the "Equipment chosen" radio group the form sends. Without this script the
 * page's own Search button does the same in a round trip; nothing here is needed to open a case.
 */
(function () {
  "use strict";

  var MIN_LENGTH = 2;
  var DELAY_MS = 200;

  var box = document.getElementById("equipment-search");
  var input = document.getElementById("q");
  var options = document.getElementById("equipment-options");
  var confirmBox = document.getElementById("duplicate-confirm");
  if (!box || !input || !options || !window.fetch) { return; }

  var searchUrl = box.getAttribute("data-search-url");
  var caseUrl = box.getAttribute("data-case-url");  // the page of case 1; other ids replace the 1

  /* Every sentence this script writes, in the page's language: data-text-* of the search box, written by the
     server; {number}, {total}, {count}, {time}, {day}, {problem}, {equipment} are filled in here. */
  function text(name, values) {
    var template = box.getAttribute("data-text-" + name) || "";
    return template.replace(/\{(\w+)\}/g, function (whole, key) {
      return values && key in values ? String(values[key]) : whole;
    });
  }

  function warrantyText(warranty) {
    var words = box.getAttribute("data-text-warranty-" + warranty.state);
    return words ? text("warranty-" + warranty.state, {day: warranty.day || ""}) : warranty.text;
  }
  var listbox = document.createElement("ul");
  var status = document.createElement("p");
  var matches = [];
  var active = -1;
  var timer = null;
  var pending = null;

  listbox.id = "q-listbox";
  listbox.className = "equipment-listbox";
  listbox.setAttribute("role", "listbox");
  listbox.setAttribute("aria-label", text("listbox"));
  listbox.hidden = true;
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  box.appendChild(listbox);
  box.appendChild(status);
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", listbox.id);

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function utc(iso) {
    return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "";
  }

  function describe(item) {
    var customer = item.customer || {};
    return item.serial_number + " " + item.model + " — " + customer.name + (item.site ? ", " + item.site : "");
  }

  function close() {
    listbox.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    var items = listbox.querySelectorAll("[role=option]");
    active = index;
    Array.prototype.forEach.call(items, function (el, i) {
      el.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    if (index >= 0 && items[index]) {
      input.setAttribute("aria-activedescendant", items[index].id);
      items[index].scrollIntoView({block: "nearest"});
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function note(text) {
    listbox.textContent = "";
    listbox.appendChild(element("li", "listbox-note", text));
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
    status.textContent = text;
  }

  function show(found, total) {
    matches = found;
    listbox.textContent = "";
    if (!found.length) {
      note(text("none"));
      return;
    }
    found.forEach(function (item, index) {
      var li = element("li");
      li.id = "q-option-" + item.id;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.appendChild(element("strong", "", describe(item)));
      li.appendChild(element("br"));
      var facts = capitalize(warrantyText(item.warranty));
      if (item.customer && item.customer.phone) { facts = item.customer.phone + " · " + facts; }
      if (item.status === "retired") {  // listed, not chosen: a new case goes on the unit that replaced it
        facts = retiredText(item) + " · " + facts;
        li.setAttribute("aria-disabled", "true");
        li.className = "retired";
      }
      if (item.open_cases.length) { facts += " · " + text("open-case", {number: item.open_cases[0].number}); }
      li.appendChild(element("span", "muted", facts));
      li.addEventListener("mousedown", function (event) { event.preventDefault(); });  // keep the focus
      li.addEventListener("click", function () { choose(index); });
      listbox.appendChild(li);
    });
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(-1);
    status.textContent = (total === 1 ? text("found-one") : text("found-many", {total: total})) +
      (total > found.length ? text("first-shown", {count: found.length}) : "") + text("use-arrows");
  }

  function search() {
    var text = input.value.trim();
    if (pending) { pending.abort(); pending = null; }
    if (text.length < MIN_LENGTH) { close(); return; }
    pending = window.AbortController ? new AbortController() : null;
    window.fetch(searchUrl + "?q=" + encodeURIComponent(text) + "&per_page=10", {
      credentials: "same-origin", headers: {"Accept": "application/json"},
      signal: pending ? pending.signal : undefined
    }).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (input.value.trim() !== text) { return; }  // the agent typed on meanwhile
      if (result.ok) {
        show(result.body.items, result.body.total);
      } else {
        var errors = (result.body.errors && result.body.errors.q) || [];
        note(errors.length ? text("search-problem", {problem: errors.join(" ")}) :
          (result.body.message || text("search-failed")) + text("use-button"));
      }
    }).catch(function (error) {
      if (error && error.name === "AbortError") { return; }
      note(text("unavailable"));
    });
  }

  function updateConfirmation() {
    if (!confirmBox) { return; }
    var checked = options.parentNode.querySelector("input[name=equipment_id]:checked");
    var openCases = checked ? parseInt(checked.getAttribute("data-open-cases") || "0", 10) : 0;
    var hasError = confirmBox.classList.contains("has-error");
    confirmBox.hidden = !(openCases > 0 || hasError);
  }

  function option(item) {
    var key = "equipment-" + item.id;
    var wrapper = element("div", "form-option equipment-option");
    var radio = element("input");
    var label = element("label");
    var facts = element("p", "equipment-facts");
    var warranty = element("span", "warranty warranty-" + item.warranty.state, capitalize(warrantyText(item.warranty)));
    var customer = item.customer || {};
    radio.type = "radio";
    radio.id = key;
    radio.name = "equipment_id";
    radio.value = String(item.id);
    radio.checked = true;
    radio.setAttribute("data-open-cases", String(item.open_cases.length));
    radio.setAttribute("aria-describedby", key + "-warranty" + (item.open_cases.length ? " " + key + "-open" : ""));
    label.htmlFor = key;
    label.appendChild(element("strong", "", item.serial_number));
    label.appendChild(document.createTextNode(" " + item.model + " — " + customer.name +
      (item.site ? ", " + item.site : "") + " "));
    label.appendChild(element("span", "muted", "(" + (customer.contact_name || "") +
      (customer.phone ? ", " + customer.phone : "") + ")"));
    warranty.id = key + "-warranty";
    facts.appendChild(warranty);
    wrapper.setAttribute("data-equipment-id", String(item.id));
    wrapper.appendChild(radio);
    wrapper.appendChild(label);
    wrapper.appendChild(facts);
    if (item.open_cases.length) {
      var warning = element("p", "open-case-warning");
      warning.id = key + "-open";
      warning.appendChild(element("strong", "", text("already-open")));
      item.open_cases.forEach(function (found, i) {
        var link = element("a", "", found.number);
        link.href = caseUrl.replace(/1$/, String(found.id));
        if (i) { warning.appendChild(document.createTextNode(text("separator"))); }
        warning.appendChild(link);
        warning.appendChild(document.createTextNode(" " + found.title + " " + text("notice", {time: utc(found.reported_at)})));
      });
      wrapper.appendChild(warning);
    }
    radio.addEventListener("change", updateConfirmation);
    return wrapper;
  }

  function retiredText(item) {
    return item.replaced_by ? text("retired-by", {serial: item.replaced_by.serial_number}) : text("retired");
  }

  function choose(index) {
    var item = matches[index];
    if (!item) { return; }
    if (item.status === "retired") {
      status.textContent = retiredText(item);
      return;
    }
    var found = document.getElementById("equipment-found");
    if (found) { found.parentNode.removeChild(found); }
    options.textContent = "";
    options.appendChild(option(item));
    input.value = item.serial_number;
    close();
    status.textContent = text("chosen", {equipment: describe(item)}) + " " + capitalize(warrantyText(item.warranty)) +
      "." + (item.open_cases.length ? " " + text("has-open-case") : "");
    updateConfirmation();
  }

  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(search, DELAY_MS);
  });
  input.addEventListener("keydown", function (event) {
    var count = listbox.querySelectorAll("[role=option]").length;
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (listbox.hidden) { search(); return; }
      highlight(count ? (active + 1) % count : -1);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      highlight(count ? (active <= 0 ? count - 1 : active - 1) : -1);
    } else if (event.key === "Enter") {
      if (!listbox.hidden && active >= 0) {
        event.preventDefault();  // choose, do not send the form
        choose(active);
      } else if (!listbox.hidden) {
        event.preventDefault();
        if (count === 1) { choose(0); }
      }
    } else if (event.key === "Escape") {
      if (!listbox.hidden) { event.preventDefault(); close(); }
    }
  });
  input.addEventListener("blur", function () { window.setTimeout(close, 150); });
  Array.prototype.forEach.call(document.querySelectorAll("input[name=equipment_id]"), function (radio) {
    radio.addEventListener("change", updateConfirmation);
  });
})();
