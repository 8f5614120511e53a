/* cargobay console: copy buttons and the usage chart. Hand-written, no dependencies; the
   pages work without it (the pull command is on the page, the numbers are in the table). */
"use strict";

function setupCopyButtons() {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {
        var field = document.createElement("textarea");
        field.value = text;
        document.body.appendChild(field);
        field.select();
        document.execCommand("copy");
        field.remove();
        done();
      }
    });
  });
}

var SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  var node = document.createElementNS(SVG, name);
  Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
  if (text !== undefined) { node.textContent = text; }
  return node;
}

function human(bytes) {
  var units = ["B", "KiB", "MiB", "GiB", "TiB"];
  var i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
  return (i === 0 ? bytes.toFixed(0) : bytes.toFixed(1)) + " " + units[i];
}

/* Stored bytes as a line and bytes out as bars, per day, on one time axis. */
function drawUsage(box, data) {
  var width = 720, height = 260, left = 70, right = 70, top = 16, bottom = 40;
  var days = data.days, stored = data.stored, out = data.transferred;
  var svg = el("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
                        "aria-labelledby": "chart-title", id: "usage-svg" });
  svg.appendChild(el("title", { id: "chart-title" },
                     "Stored bytes (line) and bytes out (bars) per day"));
  var plotW = width - left - right, plotH = height - top - bottom;
  var maxStored = Math.max.apply(null, stored.concat([1]));
  var maxOut = Math.max.apply(null, out.concat([1]));
  var step = plotW / Math.max(days.length, 1);
  svg.appendChild(el("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH,
                               "class": "axis" }));
  svg.appendChild(el("text", { x: 4, y: top + 10 }, human(maxStored)));
  svg.appendChild(el("text", { x: width - right + 4, y: top + 10 }, human(maxOut) + " out"));
  var points = [];
  days.forEach(function (day, i) {
    var x = left + i * step;
    var barH = plotH * out[i] / maxOut;
    var bar = el("rect", { x: x + step * 0.15, y: top + plotH - barH, width: step * 0.7,
                           height: barH, "class": "out", "data-day": day,
                           "data-bytes": out[i] });
    bar.appendChild(el("title", {}, day + ": " + human(out[i]) + " out"));
    svg.appendChild(bar);
    points.push((x + step / 2).toFixed(1) + "," +
                (top + plotH - plotH * stored[i] / maxStored).toFixed(1));
    if (i % Math.ceil(days.length / 6) === 0) {
      svg.appendChild(el("text", { x: x, y: height - 16 }, day));
    }
  });
  svg.appendChild(el("polyline", { points: points.join(" "), "class": "stored" }));
  box.replaceChildren(svg);
}

function setupUsageChart() {
  var box = document.getElementById("usage-chart");
  if (!box) { return; }
  fetch(box.getAttribute("data-source"), { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("usage data: HTTP " + response.status); }
      return response.json();
    })
    .then(function (data) { drawUsage(box, data); })
    .catch(function (error) { box.textContent = error.message; });
}

function setupRegionPicker() {
  var picker = document.getElementById("region-picker");
  if (picker) {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }
}

document.addEventListener("DOMContentLoaded", function () {
  setupCopyButtons();
  setupRegionPicker();
  setupUsageChart();
});
