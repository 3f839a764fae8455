// watchkeeper dashboard: draws the page's figures, polls its data URL and swaps the live
// fragments and charts in place, asks before every action. No framework, no network beyond
// this server.
(function () {
  "use strict";
  var page = document.getElementById("page");
  var stamp = document.getElementById("updated");
  var config = {displaylogo: false, responsive: true};
  var timer = null;
  var latest = 0; // only the newest request's answer is drawn (an older one may come later)

  function draw(figures) {
    if (typeof Plotly === "undefined") { return; }
    Object.keys(figures || {}).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { Plotly.react(el, figures[id].data, figures[id].layout, config); }
    });
  }

  function apply(data) {
    Object.keys(data.fragments || {}).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.innerHTML = data.fragments[id]; }
    });
    draw(data.figures);
    if (data.refresh && String(data.refresh) !== page.dataset.refresh) {
      page.dataset.refresh = String(data.refresh); // a longer range changes more slowly
      schedule();
    }
    if (stamp) {
      stamp.textContent = "updated " + new Date().toLocaleTimeString();
      stamp.classList.remove("stale");
    }
  }

  function url() {
    var params = new URLSearchParams(window.location.search);
    if (page.dataset.range) { params.set("range", page.dataset.range); }
    return page.dataset.source + "?" + params.toString();
  }

  function refresh() {
    if (!page || !page.dataset.source) { return; }
    var mine = ++latest;
    fetch(url(), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname)); return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) { if (data && mine === latest) { apply(data); } })
      .catch(function () {
        if (stamp && mine === latest) {
          stamp.textContent = "could not refresh";
          stamp.classList.add("stale");
        }
      });
  }

  function schedule() {
    if (timer) { clearInterval(timer); }
    var seconds = parseInt(page.dataset.refresh || "15", 10);
    timer = setInterval(function () { if (!document.hidden) { refresh(); } }, seconds * 1000);
  }

  // a new time range: new data at once, no reload; the address keeps the choice
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-range]") : null;
    if (!link || !page) { return; }
    event.preventDefault();
    page.dataset.range = link.dataset.range;
    var params = new URLSearchParams(window.location.search);
    params.set("range", link.dataset.range);
    window.history.replaceState(null, "", "?" + params.toString());
    document.querySelectorAll("a[data-range]").forEach(function (a) {
      a.classList.toggle("on", a === link);
    });
    refresh();
  });

  // every action asks first (delegated: fragments are replaced while the page lives)
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.dataset ? form.dataset.confirm : null;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var initial = document.getElementById("wk-figures");
    if (initial) { draw(JSON.parse(initial.textContent)); }
    if (page && page.dataset.source) {
      if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
      schedule();
    }
  });
})();
