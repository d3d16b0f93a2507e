// The pages' only script (the Content-Security-Policy allows no inline one): grid rows of
// table fields, added and removed; page previews zoomed on click.
function renumber(table) {
  table.querySelectorAll("tr.row").forEach(function (row, index) {
    row.querySelectorAll("[name]").forEach(function (input) {
      input.name = input.name.replace(/^([^.]+)\.\d+\./, "$1." + index + ".");
    });
  });
}

document.addEventListener("click", function (event) {
  var add = event.target.closest("[data-add-row]");
  if (add) {
    var table = document.getElementById(add.dataset.addRow);
    var rows = table.querySelectorAll("tr.row");
    var copy = rows[rows.length - 1].cloneNode(true);
    copy.querySelectorAll("input, textarea").forEach(function (i) { i.value = ""; });
    copy.querySelectorAll("select").forEach(function (s) { s.selectedIndex = 0; });
    rows[rows.length - 1].parentNode.appendChild(copy);
    renumber(table);
    return;
  }
  var remove = event.target.closest("[data-remove-row]");
  if (remove) {
    var row = remove.closest("tr"), grid = row.closest("table");
    if (grid.querySelectorAll("tr.row").length > 1) { row.remove(); } else {
      row.querySelectorAll("input, textarea").forEach(function (i) { i.value = ""; });
    }
    renumber(grid);
    return;
  }
  var zoom = event.target.closest(".zoom, .zoomed");
  if (zoom) { zoom.className = zoom.className === "zoom" ? "zoomed" : "zoom"; }
});
