(function () {
  "use strict";
  function key(cell, numeric) {
    var v = cell ? cell.getAttribute("data-sort") : null;
    if (numeric) { return v === null || v === "" ? null : parseFloat(v); }
    return (v === null ? cell.textContent : v).toLowerCase();
  }
  function sortBy(th) {
    var table = th.closest("table"), idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending", numeric = th.getAttribute("data-sort-type") === "num";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[idx], numeric), y = key(b.cells[idx], numeric);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }  // no time: always last
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function applyFilters() {
    var family = document.getElementById("family-filter").value;
    var text = document.getElementById("text-filter").value.trim().toLowerCase();
    var hidden = {};
    document.querySelectorAll(".backend-toggle").forEach(function (box) { hidden[box.value] = !box.checked; });
    document.querySelectorAll("table.results").forEach(function (table) {
      var shown = 0;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var fam = tr.getAttribute("data-family"), be = tr.getAttribute("data-backend");
        var off = (family && fam !== null && fam !== family) || (be !== null && hidden[be] === true) ||
                  (text && (tr.getAttribute("data-case") || "").indexOf(text) < 0);
        tr.classList.toggle("off", !!off);
        if (!off) { shown += 1; }
      });
      var count = table.querySelector(".count");
      if (count) { count.textContent = shown + " of " + count.getAttribute("data-total") + " rows"; }
    });
    document.querySelectorAll("[data-col]").forEach(function (cell) {
      var off = cell.getAttribute("data-col").split(" ").some(function (b) { return hidden[b] === true; });
      cell.classList.toggle("off", off);
    });
    document.querySelectorAll("figure[data-family]").forEach(function (fig) {
      fig.classList.toggle("off", !!family && fig.getAttribute("data-family") !== family);
    });
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sortBy(th); } });
  });
  var family = document.getElementById("family-filter"), text = document.getElementById("text-filter");
  if (family) { family.addEventListener("change", applyFilters); }
  if (text) { text.addEventListener("input", applyFilters); }
  document.querySelectorAll(".backend-toggle").forEach(function (b) { b.addEventListener("change", applyFilters); });
  var modes = document.getElementById("mode-switch");
  if (modes) {
    modes.addEventListener("change", function (ev) {
      document.querySelectorAll(".mode-block").forEach(function (b) { b.hidden = b.dataset.mode !== ev.target.value; });
    });
  }
  document.querySelectorAll(".chart-grid figure").forEach(function (fig) {  // click: full row, click again: back
    fig.addEventListener("click", function () { fig.classList.toggle("zoom"); });
  });
})();
