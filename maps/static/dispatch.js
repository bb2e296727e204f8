/* casegrid dispatcher map: cases loaded by viewport (points when few, a count grid when
 * many), clustered, coloured by state, filterable; popups fetched on click.
 * Config comes from maps/dispatch.py; no network access beyond this server. */
(function () {
  "use strict";
  var COLOURS = { "new": "#1f78b4", dispatched: "#e6a100", handled: "#33a02c", closed: "#8c8c8c", overdue: "#e31a1c" };
  var STATES = ["new", "dispatched", "handled", "overdue", "closed"];

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function el(tag, attrs, html) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (html != null) e.innerHTML = html;
    return e;
  }

  function init(map, layerControl, cfg) {
    var T = cfg.strings;
    var state = JSON.parse(JSON.stringify(cfg.filters));
    // Without a tile layer (tiles=none) the map has no maxZoom, which clustering needs.
    if (map.options.maxZoom == null) map.setMaxZoom(19);
    var clusters = L.markerClusterGroup({
      showCoverageOnHover: false, maxClusterRadius: 45, chunkedLoading: false,
      iconCreateFunction: function (c) {
        var kids = c.getAllChildMarkers(), overdue = 0;
        for (var i = 0; i < kids.length; i++) if (kids[i].options.cgOverdue) overdue++;
        var n = c.getChildCount();
        var size = n < 10 ? 32 : n < 100 ? 38 : 46;
        var tier = n < 10 ? "small" : n < 100 ? "medium" : "large";
        // overdue cases inside a cluster show as a red badge with their count
        var badge = overdue ? '<b class="cg-od" title="' + esc(T.state_overdue) + '">' + overdue + "</b>" : "";
        return L.divIcon({
          html: "<div><span>" + n + "</span></div>" + badge,
          className: "marker-cluster marker-cluster-" + tier + " cg-cluster",
          iconSize: L.point(size, size)
        });
      }
    });
    var cells = L.layerGroup();
    var flagged = L.layerGroup();
    var cases = L.featureGroup([clusters, cells]).addTo(map);
    flagged.addTo(map);
    layerControl.addOverlay(cases, T.cases);
    layerControl.addOverlay(flagged, T.flag_check);
    var status = null;
    var api = { state: state, layers: { cases: cases, clusters: clusters, cells: cells, flagged: flagged },
                last: null, loads: 0 };
    window.cgDispatch = api;

    function popupHtml(d) {
      var rule = d.route_rule ? (T["rule_" + d.route_rule] || d.route_rule) : "";
      if (d.route_rule === "nearest" && d.route_distance_m != null) rule += " (" + Math.round(d.route_distance_m) + " m)";
      var warn = "";
      if (d.route_rule === "nearest") warn = '<div class="cg-warn">' + esc(T.flag_nearest) + "</div>";
      else if (d.near_boundary) warn = '<div class="cg-warn">' + esc(T.flag_near_boundary) + "</div>";
      var rows = [[T.case_no, d.case_no], [T.category, d.category], [T.reported_at, d.reported_at],
                  [T.state, d.state_label], [T.due_at, d.due_at], [T.community, d.community], [T.route_rule, rule]];
      var body = rows.filter(function (r) { return r[1]; }).map(function (r) {
        return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
      }).join("");
      var links = '<div class="cg-links">';
      if (d.record_url) links += '<a href="' + esc(d.record_url) + '" target="_blank" rel="noopener">' + esc(T.record) + "</a> ";
      if (d.map_url) links += '<a href="' + esc(d.map_url) + '" target="_blank" rel="noopener">' + esc(T.case_map) + "</a>";
      links += "</div>";
      var badge = '<span class="cg-badge" style="background:' + (d.overdue ? COLOURS.overdue : COLOURS[d.state_group] || "#666") + '">' +
        esc(d.overdue ? T.state_overdue : d.state_label) + "</span>";
      // The case's first photo the caller may see (a thumbnail; the page's cookie fetches it).
      var photo = d.thumb_url ? '<img class="cg-thumb" src="' + esc(d.thumb_url) + '" alt="" loading="lazy" style="display:block;max-width:100%;max-height:160px;margin:4px 0">' : "";
      return '<div class="cg-popup"><b>' + esc(d.case_no) + "</b> " + badge + warn + photo + "<table>" + body + "</table>" + links + "</div>";
    }

    // A popup of its own on the map (not bound to the marker): markers are replaced on every
    // viewport load, and a marker hidden in a cluster cannot open a popup.
    function openPopup(marker, id) {
      var popup = L.popup({ maxWidth: 340 }).setLatLng(marker.getLatLng()).setContent(esc(T.loading)).openOn(map);
      var done = function (d) { popup.setContent(popupHtml(d)); };
      if (cfg.inline) { done(cfg.inline.summaries[id]); return; }
      fetch(cfg.case_api.replace("{id}", id) + "?lang=" + cfg.lang, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(done)
        .catch(function () { popup.setContent(esc(T.load_failed)); });
    }

    function pointMarker(p) {
      // p = [id, lon, lat, group, overdue, flag]
      var fill = p[4] ? COLOURS.overdue : (COLOURS[p[3]] || "#666");
      var m = L.circleMarker([p[2], p[1]], {
        radius: 7, weight: p[5] ? 3 : 1.5, color: p[5] ? "#6a3d9a" : "#ffffff", dashArray: p[5] ? "3 2" : null,
        fillColor: fill, fillOpacity: 0.9, cgOverdue: !!p[4]
      });
      m.on("click", function () { openPopup(m, p[0]); });
      return m;
    }

    function flagMarker(p) {
      var m = L.circleMarker([p[2], p[1]], {
        radius: 12, weight: 2.5, color: "#6a3d9a", dashArray: p[5] === 2 ? "2 3" : "6 3", fill: false,
        interactive: true
      });
      m.on("click", function () { openPopup(m, p[0]); });
      return m;
    }

    function cellMarker(c) {
      // c = [lon, lat, n, n_overdue, n_flagged]
      var share = c[2] ? c[3] / c[2] : 0;
      var size = Math.max(26, Math.min(64, 14 + 6 * Math.log(c[2] + 1)));
      var cls = share > 0.2 ? "cg-cell cg-cell-hot" : share > 0 ? "cg-cell cg-cell-warm" : "cg-cell";
      var icon = L.divIcon({ className: cls, iconSize: [size, size],
        html: "<div><span>" + (c[2] >= 10000 ? Math.round(c[2] / 1000) + "k" : c[2]) + "</span></div>" });
      var m = L.marker([c[1], c[0]], { icon: icon, title: c[2] + " · " + T.state_overdue + " " + c[3] });
      m.on("click", function () { map.setView([c[1], c[0]], Math.min(map.getZoom() + 2, 18)); });
      return m;
    }

    function render(data) {
      clusters.clearLayers(); cells.clearLayers(); flagged.clearLayers();
      api.last = data;
      if (data.mode === "points") {
        clusters.addLayers(data.points.map(pointMarker));
        data.points.filter(function (p) { return p[5]; }).forEach(function (p) { flagged.addLayer(flagMarker(p)); });
        setStatus(T.shown + ": " + data.total);
      } else {
        data.cells.forEach(function (c) { cells.addLayer(cellMarker(c)); });
        setStatus(T.shown + ": " + data.total + " — " + T.zoom_in);
      }
      api.loads += 1;
      document.body.setAttribute("data-cg-mode", data.mode);
      document.body.setAttribute("data-cg-total", String(data.total));
      document.body.setAttribute("data-cg-loads", String(api.loads));
    }

    function params(withBbox) {
      var q = new URLSearchParams();
      Object.keys(state).forEach(function (k) {
        var v = state[k];
        if (Array.isArray(v)) v.forEach(function (x) { q.append(k, x); });
        else if (v) q.set(k, v);
      });
      q.set("lang", cfg.lang);
      if (withBbox) {
        var b = map.getBounds();
        q.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (x) { return x.toFixed(6); }).join(","));
        q.set("zoom", map.getZoom());
      }
      return q;
    }

    var inflight = null, timer = null;
    function load() {
      if (cfg.inline) { render(cfg.inline.data); return; }
      if (inflight) inflight.abort();
      inflight = new AbortController();
      setStatus(T.loading);
      fetch(cfg.api + "?" + params(true).toString(), { credentials: "same-origin", signal: inflight.signal })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(render)
        .catch(function (e) { if (e.name !== "AbortError") setStatus(T.load_failed); });
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(load, 200); }

    function setStatus(text) { if (status) status.textContent = text; }

    // --- legend ---------------------------------------------------------------------------
    var legend = L.control({ position: "bottomright" });
    legend.onAdd = function () {
      var d = el("div", { "class": "cg-legend" });
      var h = "<b>" + esc(T.legend) + "</b>";
      ["new", "dispatched", "handled", "closed", "overdue"].forEach(function (s) {
        h += '<div><i class="cg-dot" style="background:' + COLOURS[s] + '"></i>' + esc(T["state_" + s]) + "</div>";
      });
      h += '<div><i class="cg-dot cg-dot-flag"></i>' + esc(T.flag_check) + "</div>";
      h += '<div><i class="cg-post cg-post-legend"></i>' + esc(T.posts) + "</div>";
      h += '<div><i class="cg-dot cg-dot-cell"></i>' + esc(T.zoom_in) + "</div>";
      d.innerHTML = h;
      return d;
    };
    legend.addTo(map);

    // --- filters ----------------------------------------------------------------------------
    var panel = L.control({ position: "topleft" });
    panel.onAdd = function () {
      var d = el("div", { "class": "cg-filters", id: "cg-filters" });
      L.DomEvent.disableClickPropagation(d);
      L.DomEvent.disableScrollPropagation(d);
      var o = cfg.options, h = "<b>" + esc(T.filters) + "</b>";
      function select(name, label, items, multiple) {
        var s = '<label>' + esc(label) + '<select name="' + name + '"' + (multiple ? " multiple size=4" : "") + ">";
        if (!multiple) s += '<option value="">' + esc(T.all) + "</option>";
        items.forEach(function (it) { s += '<option value="' + esc(it[0]) + '">' + esc(it[1]) + "</option>"; });
        return s + "</select></label>";
      }
      h += select("subdistrict", T.subdistrict, o.subdistricts);
      h += select("community", T.community, o.communities);
      h += select("category", T.category, o.categories);
      h += select("channel", T.channel, o.channels);
      h += '<fieldset><legend>' + esc(T.state) + "</legend>";
      STATES.forEach(function (s) {
        h += '<label class="cg-check"><input type="checkbox" name="state" value="' + s + '"><i class="cg-dot" style="background:' +
          COLOURS[s] + '"></i>' + esc(T["state_" + s]) + "</label>";
      });
      h += '<div class="cg-hint">' + esc(T.open_cases) + "</div></fieldset>";
      h += '<label>' + esc(T.date_from) + '<input type="date" name="date_from"></label>';
      h += '<label>' + esc(T.date_to) + '<input type="date" name="date_to"></label>';
      h += '<div class="cg-buttons"><button type="button" data-act="apply">' + esc(T.apply) + '</button>' +
        '<button type="button" data-act="reset">' + esc(T.reset) + "</button></div>";
      h += '<div class="cg-status" id="cg-status"></div>';
      d.innerHTML = h;
      status = d.querySelector("#cg-status");
      if (cfg.inline) {
        Array.prototype.forEach.call(d.querySelectorAll("select,input,button"), function (x) { x.disabled = true; });
      }
      fill(d);
      d.addEventListener("change", function (ev) {
        if (ev.target.name === "subdistrict") filterCommunities(d);
        read(d); apply();
      });
      d.querySelector('[data-act="apply"]').addEventListener("click", function () { read(d); apply(); });
      d.querySelector('[data-act="reset"]').addEventListener("click", function () {
        Object.keys(state).forEach(function (k) { state[k] = Array.isArray(state[k]) ? [] : ""; });
        fill(d); apply();
      });
      return d;
    };

    function first(v) { return Array.isArray(v) ? (v[0] || "") : (v || ""); }
    function fill(d) {
      ["subdistrict", "community", "category", "channel"].forEach(function (k) { d.querySelector('[name="' + k + '"]').value = first(state[k]); });
      filterCommunities(d);
      Array.prototype.forEach.call(d.querySelectorAll('[name="state"]'), function (c) { c.checked = state.state.indexOf(c.value) >= 0; });
      d.querySelector('[name="date_from"]').value = state.date_from || "";
      d.querySelector('[name="date_to"]').value = state.date_to || "";
    }
    function filterCommunities(d) {
      var sub = d.querySelector('[name="subdistrict"]').value;
      var sel = d.querySelector('[name="community"]');
      Array.prototype.forEach.call(sel.options, function (opt, i) {
        if (i === 0) return;
        var parent = cfg.options.community_parent[opt.value];
        opt.hidden = !!sub && parent !== sub;
      });
      if (sel.selectedOptions.length && sel.selectedOptions[0].hidden) sel.value = "";
    }
    function read(d) {
      ["subdistrict", "community", "category", "channel"].forEach(function (k) {
        var v = d.querySelector('[name="' + k + '"]').value; state[k] = v ? [v] : [];
      });
      state.state = Array.prototype.filter.call(d.querySelectorAll('[name="state"]'), function (c) { return c.checked; })
        .map(function (c) { return c.value; });
      state.date_from = d.querySelector('[name="date_from"]').value;
      state.date_to = d.querySelector('[name="date_to"]').value;
    }
    function apply() {
      if (!cfg.inline && window.history && window.location.protocol !== "file:") {
        var q = params(false); q.delete("lang"); if (cfg.lang !== "zh") q.set("lang", cfg.lang);
        window.history.replaceState(null, "", window.location.pathname + (q.toString() ? "?" + q.toString() : ""));
      }
      load();
    }
    panel.addTo(map);

    map.on("moveend", schedule);
    load();
  }

  window.CasegridDispatch = { init: init };
})();
