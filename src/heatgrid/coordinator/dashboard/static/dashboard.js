// heatgrid dashboard: live updates over server-sent events, and the heater chart (uPlot).
"use strict";
(function () {
  function live(url, name, onData) {
    const state = document.getElementById("live-state");
    const source = new EventSource(url);
    source.addEventListener("open", () => state && (state.dataset.state = "open"));
    source.addEventListener("error", () => state && (state.dataset.state = "error"));
    source.addEventListener(name, (event) => {
      onData(JSON.parse(event.data));
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
  }

  const fleet = document.querySelector("[data-fleet-events]");
  if (fleet) {
    live(fleet.dataset.fleetEvents, "fleet", (data) => {
      document.getElementById("fleet-rows").innerHTML = data.rows;
      document.getElementById("fleet-summary").innerHTML = data.summary;
    });
  }

  const heater = document.querySelector("[data-heater-events]");
  if (heater) {
    const box = document.getElementById("chart");
    const columns = (points) => [0, 1, 2, 3].map((i) => points.map((p) => p[i]));
    let points = JSON.parse(document.getElementById("history-points").textContent);
    const size = () => ({ width: Math.max(280, box.clientWidth), height: window.innerWidth < 700 ? 260 : 320 });
    const styles = getComputedStyle(document.documentElement);
    const axis = { stroke: styles.getPropertyValue("--muted"), grid: { stroke: styles.getPropertyValue("--line") } };
    const chart = new uPlot({
      ...size(),
      series: [
        {},
        { label: "Room °C", stroke: "#c4411b", width: 2, scale: "c", value: (u, v) => v == null ? "–" : v.toFixed(1) },
        { label: "Setpoint °C", stroke: "#6b6a65", width: 1.5, dash: [6, 4], scale: "c", value: (u, v) => v == null ? "–" : v.toFixed(1) },
        { label: "Power W", stroke: "#1a5fd6", fill: "rgba(26,95,214,0.08)", width: 1.5, scale: "w", value: (u, v) => v == null ? "–" : v.toFixed(0) },
      ],
      axes: [
        axis,
        { ...axis, scale: "c", label: "°C" },
        { ...axis, scale: "w", side: 1, label: "W", grid: { show: false } },
      ],
      scales: { x: { time: true } },
    }, columns(points), box);
    window.addEventListener("resize", () => chart.setSize(size()));
    live(heater.dataset.heaterEvents, "heater", (data) => {
      document.getElementById("heater-status").innerHTML = data.status;
      points = data.points;
      chart.setData(columns(points));
      document.getElementById("point-count").textContent = points.length + " samples";
    });
  }
})();
