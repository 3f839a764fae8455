(function () {
  var figs = JSON.parse(document.getElementById("wk-figures").textContent);
  var cfg = {displaylogo: false, responsive: true};
  figs.forEach(function (f) { Plotly.newPlot(f.id, f.data, f.layout, cfg); });
  // a click on a column's heading sorts the table by it, numbers as numbers
  document.querySelectorAll("table.sortable").forEach(function (t) {
    t.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var up = th.dataset.order !== "up";
        th.dataset.order = up ? "up" : "down";
        rows.sort(function (a, b) {
          var x = a.cells[col].dataset.sort || a.cells[col].textContent;
          var y = b.cells[col].dataset.sort || b.cells[col].textContent;
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
