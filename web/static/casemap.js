// The case page's small map: the point, its community, near-boundary alternates, the post and
// nearby possible duplicates. Dragging the point (when the person may re-route) asks the server
// where it would go and shows that before anything is saved.
(function () {
  "use strict";
  var el = document.getElementById("case-map");
  var dataEl = document.getElementById("case-map-data");
  if (!el || !dataEl || typeof L === "undefined") return;
  var d = JSON.parse(dataEl.textContent || "{}");
  if (!d.point) return;
  var map = L.map(el, { scrollWheelZoom: false, keyboard: true }).setView(d.point, 16);
  if (d.tiles) L.tileLayer(d.tiles, { attribution: d.attribution, maxZoom: 19 }).addTo(map);
  var bounds = L.latLngBounds([d.point]);
  if (d.community) {
    var own = L.geoJSON(d.community.geometry, { style: { color: "#1559b7", weight: 2, fillOpacity: 0.06 } })
      .bindTooltip(d.community.name).addTo(map);
    bounds.extend(own.getBounds());
  }
  (d.alternates || []).forEach(function (a) {
    L.geoJSON(a.geometry, { style: { color: "#c77700", weight: 2, dashArray: "6 4", fillOpacity: 0.04 } })
      .bindTooltip(a.name).addTo(map);
  });
  if (d.post) {
    L.circleMarker(d.post.latlng, { radius: 7, color: "#1e6b3a", fillColor: "#1e6b3a", fillOpacity: 0.9 })
      .bindTooltip(d.words.post + ": " + d.post.name).addTo(map);
    bounds.extend(d.post.latlng);
  }
  (d.duplicates || []).forEach(function (x) {
    L.circleMarker(x.latlng, { radius: 6, color: "#8a5300", fillColor: "#f0a500", fillOpacity: 0.9 })
      .bindTooltip(d.words.duplicates + ": " + x.case_no)
      .on("click", function () { window.location.href = x.href; }).addTo(map);
  });
  var marker = L.marker(d.point, { draggable: !!d.can_move, keyboard: true, title: d.case_no }).addTo(map);
  map.fitBounds(bounds.pad(0.15), { maxZoom: 17 });
  if (!d.can_move) return;
  var form = document.getElementById("move-form");
  var preview = document.getElementById("move-preview");
  marker.on("dragend", function () {
    var p = marker.getLatLng();
    form.hidden = false;
    document.getElementById("move-lon").value = p.lng.toFixed(7);
    document.getElementById("move-lat").value = p.lat.toFixed(7);
    var crs = document.createElement("input");
    crs.type = "hidden"; crs.name = "crs"; crs.value = d.crs || "wgs84";
    form.appendChild(crs);
    var url = d.preview_url + "?lon=" + p.lng.toFixed(7) + "&lat=" + p.lat.toFixed(7) + "&crs=" + (d.crs || "wgs84") +
      (document.body.dataset.lang === "en" ? "&lang=en" : "");
    if (window.htmx) { htmx.ajax("GET", url, { target: "#move-preview", swap: "innerHTML" }); }
  });
})();
