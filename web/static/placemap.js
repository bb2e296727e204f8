// The 需定位 panel's map (an address-only case without a point): the matcher's suggestions
// as markers over the active communities' outlines (named on hover or tap); a click on the
// map or on a suggestion puts a draggable marker there, and the server says where that
// point would go (community and rule) before anything is saved.
(function () {
  "use strict";
  var el = document.getElementById("place-map");
  var dataEl = document.getElementById("place-map-data");
  if (!el || !dataEl || typeof L === "undefined") return;
  var d = JSON.parse(dataEl.textContent || "{}");
  var map = L.map(el, { scrollWheelZoom: false, keyboard: true });
  el.placeMap = map;  // for scripts and tests that need the map's own projection
  if (d.tiles) L.tileLayer(d.tiles, { attribution: d.attribution, maxZoom: 19 }).addTo(map);
  if (d.bounds) {
    map.fitBounds(L.latLngBounds(d.bounds).pad(0.3), { maxZoom: 16 });
  } else {
    map.setView([0, 0], 2);
  }
  var form = document.getElementById("place-form");
  var marker = null;
  var asked = 0;

  function place(latlng) {
    if (!d.can_place || !form) return;
    if (!marker) {
      marker = L.marker(latlng, { draggable: true, keyboard: true, title: d.words.here }).addTo(map);
      marker.on("dragend", function () { place(marker.getLatLng()); });
    } else {
      marker.setLatLng(latlng);
    }
    form.hidden = false;
    document.getElementById("place-lon").value = latlng.lng.toFixed(7);
    document.getElementById("place-lat").value = latlng.lat.toFixed(7);
    var preview = document.getElementById("place-preview");
    var mine = ++asked;
    var url = d.preview_url + "?lon=" + latlng.lng.toFixed(7) + "&lat=" + latlng.lat.toFixed(7) +
      "&crs=" + (d.crs || "wgs84") + (document.body.dataset.lang === "en" ? "&lang=en" : "");
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.text(); })
      .then(function (html) { if (mine === asked) preview.innerHTML = html; });
  }

  // The active communities' outlines (served by casegrid for the view, below the markers),
  // each named on hover or tap: where the point is going to land.
  var outlinePane = map.createPane("outlines");
  outlinePane.style.zIndex = 350;
  var outlines = L.featureGroup().addTo(map);
  var loaded = null;
  var loadedZoom = null;
  var wanted = 0;
  // Outlines are simplified for the box asked: asked again when the view leaves that box or
  // zooms in two levels (finer lines), and drawn anew from the answer.
  function loadOutlines() {
    if (!d.outlines_url) return;
    var view = map.getBounds();
    if (loaded && loaded.contains(view) && map.getZoom() < loadedZoom + 2) return;
    var box = view.pad(0.5);
    loaded = box;
    loadedZoom = map.getZoom();
    var mine = ++wanted;
    var q = [box.getWest(), box.getSouth(), box.getEast(), box.getNorth()]
      .map(function (v) { return v.toFixed(6); }).join(",");
    fetch(d.outlines_url + "?bbox=" + q, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { features: [] }; })
      .then(function (fc) {
        if (mine !== wanted) return;
        outlines.clearLayers();
        fc.features.forEach(function (f) {
          L.geoJSON(f, { pane: "outlines", style: {
            color: "#17324f", weight: 1.5, opacity: 0.7, fillColor: "#1559b7", fillOpacity: 0.04,
            className: "outline outline-" + f.properties.code } })
            .bindTooltip(f.properties.name, { sticky: true, className: "outline-name" })
            .addTo(outlines);
        });
        el.dataset.outlines = fc.features.length;
      });
  }
  map.on("moveend", loadOutlines);
  loadOutlines();

  (d.suggestions || []).forEach(function (s, i) {
    L.circleMarker(s.latlng, { radius: 8, color: "#1559b7", fillColor: "#4a90e2", fillOpacity: 0.8 })
      .bindTooltip((i + 1) + ". " + s.label + (s.why ? " · " + s.why : ""))
      .on("click", function () { place(L.latLng(s.latlng)); })
      .addTo(map);
  });
  map.on("click", function (ev) { place(ev.latlng); });
})();
