import { useId, useLayoutEffect, useRef, useState, type ReactNode, type RefObject } from "react";
import { nice, ticks } from "d3-array";
import { utcTicks } from "d3-time";

/**
 * Small SVG charts: d3-array's nice bounds and ticks, d3-time's calendar ticks, React
 * for the marks (about 4 kB gzipped in all: d3-scale and d3-shape were 18 kB).  Each
 * mark carries its value as sent by the API (data-value, a decimal string) and a
 * <title>; floats are only pixel positions.  The SVG is drawn at the width of its box
 * (no scaled-down text on a phone).
 */

/** A linear map of [d0, d1] onto [r0, r1]. */
function linear([d0, d1]: [number, number], [r0, r1]: [number, number]) {
  const span = d1 - d0 || 1;
  return (value: number) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** Tick labels: thousands separated, as few decimals as the step needs. */
function tickLabel(value: number, step: number): string {
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function dayLabel(moment: Date): string {
  return `${moment.getUTCDate()} ${MONTHS[moment.getUTCMonth()]}`;
}

/** Step-after path through the points: flat until the next point, then up or down. */
function stepPath(points: [number, number][]): string {
  return points
    .map(([px, py], i) => (i === 0 ? `M${px},${py}` : `H${px}V${py}`))
    .join("");
}

function useWidth(initial = 600) {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(initial);
  // Measured before the first paint (a layout effect), so a chart never shows, nor is
  // measured by a test, at the initial width on a narrower screen.
  useLayoutEffect(() => {
    const box = ref.current;
    if (!box) return;
    if (box.clientWidth > 0) setWidth(Math.floor(box.clientWidth));
    const observer = new ResizeObserver(([entry]) => {
      const measured = Math.floor(entry.contentRect.width);
      if (measured > 0) setWidth(measured);
    });
    observer.observe(box);
    return () => observer.disconnect();
  }, []);
  return { ref, width };
}

/**
 * A chart's figure: its caption, and the SVG at the measured width of its box, named by
 * the caption and described by `desc` (what a screen reader is told of the marks).
 */
function ChartFrame({
  name,
  caption,
  desc,
  box,
  width,
  height,
  children,
}: {
  name: string;
  caption: string;
  desc: string;
  box: RefObject<HTMLDivElement>;
  width: number;
  height: number;
  children: ReactNode;
}) {
  const id = useId();
  return (
    <figure className="chart" data-chart={name}>
      <figcaption id={`${id}-caption`}>{caption}</figcaption>
      <div ref={box} className="chart-box">
        <svg
          role="img"
          aria-labelledby={`${id}-caption ${id}-desc`}
          width={width}
          height={height}
          viewBox={`0 0 ${width} ${height}`}
        >
          <desc id={`${id}-desc`}>{desc}</desc>
          {children}
        </svg>
      </div>
    </figure>
  );
}

export interface LinePoint {
  /** ISO instant. */
  at: string;
  /** The running total after this point, a decimal string. */
  value: string;
  /** What the point is (shown in its title). */
  label: string;
}

/** A running total over time (a step line from `start` at zero), e.g. realised P&L. */
export function StepChart({
  caption,
  points,
  start,
  end,
  unit,
  name,
}: {
  caption: string;
  points: LinePoint[];
  start: string;
  end: string;
  unit: string;
  name: string;
}) {
  const { ref, width } = useWidth();
  const height = 220;
  const margin = { top: 12, right: 12, bottom: 28, left: 72 };
  const t0 = new Date(start);
  const t1 = new Date(end);
  const x = (moment: Date) => linear([+t0, +t1], [margin.left, width - margin.right])(+moment);
  const values = points.map((p) => Number(p.value));
  const [low, high] = nice(Math.min(0, ...values), Math.max(0, ...values) || 1, 5);
  const y = linear([low, high], [height - margin.bottom, margin.top]);
  const yTicks = ticks(low, high, 5);
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  const coords: [number, number][] = [
    [x(t0), y(0)],
    ...points.map((p, i): [number, number] => [x(new Date(p.at)), y(values[i])]),
    [x(t1), y(values[values.length - 1] ?? 0)],
  ];
  const path = stepPath(coords);
  const last = points[points.length - 1];
  return (
    <ChartFrame
      name={name}
      caption={caption}
      box={ref}
      width={width}
      height={height}
      desc={
        points.length ? `${points.length} points; ${last.value} ${unit} at the end of the period.` : "Nothing in the period."
      }
    >
      {yTicks.map((tick) => (
        <g key={tick} className="tick" transform={`translate(0,${y(tick)})`}>
          <line x1={margin.left} x2={width - margin.right} className={tick === 0 ? "zero" : "grid"} />
          <text x={margin.left - 6} dy="0.32em" textAnchor="end">
            {tickLabel(tick, yStep)}
          </text>
        </g>
      ))}
      {utcTicks(t0, t1, Math.max(2, Math.floor(width / 110))).map((tick) => (
        <text
          key={tick.toISOString()}
          className="tick"
          x={x(tick)}
          y={height - 8}
          textAnchor="middle"
        >
          {dayLabel(tick)}
        </text>
      ))}
      <path d={path} className="line" />
      {points.map((p, i) => (
        <circle
          key={`${p.at}-${i}`}
          className="point"
          cx={coords[i + 1][0]}
          cy={coords[i + 1][1]}
          r={3}
          data-at={p.at}
          data-value={p.value}
        >
          <title>{`${p.at.slice(0, 10)} ${p.label}: ${p.value} ${unit}`}</title>
        </circle>
      ))}
    </ChartFrame>
  );
}

export interface Bar {
  label: string;
  /** The bar's length, a decimal string (counts, lots, money). */
  value: string;
  /** What is written beside the bar. */
  text: string;
  tone?: "good" | "bad";
}

/** Horizontal bars, longest first as given, lengths proportional to `value`. */
export function BarChart({ caption, bars, name }: { caption: string; bars: Bar[]; name: string }) {
  const { ref, width } = useWidth();
  const row = 26;
  // Room for the longest label (about 7 px a character at 12 px), within a third of the width.
  const longest = Math.max(0, ...bars.map((b) => b.label.length));
  const labelWidth = Math.min(Math.max(60, longest * 7 + 10), Math.floor(width / 3));
  const textWidth = Math.min(170, Math.floor(width * 0.4));
  const height = Math.max(1, bars.length) * row + 4;
  const values = bars.map((b) => Number(b.value));
  const x = linear([0, Math.max(0, ...values) || 1], [0, Math.max(10, width - labelWidth - textWidth - 8)]);
  return (
    <ChartFrame
      name={name}
      caption={caption}
      box={ref}
      width={width}
      height={height}
      desc={bars.length ? bars.map((b) => `${b.label}: ${b.text}`).join("; ") : "Nothing in the period."}
    >
      {bars.length === 0 && (
        <text x={0} y={18} className="tick">
          Nothing in the period
        </text>
      )}
      {bars.map((bar, i) => (
        <g
          key={bar.label}
          className={`bar ${bar.tone ?? ""}`}
          transform={`translate(0,${i * row + 2})`}
          data-label={bar.label}
          data-value={bar.value}
        >
          <title>{`${bar.label}: ${bar.text}`}</title>
          <text x={0} y={row / 2} dy="0.32em" className="bar-label">
            {bar.label}
          </text>
          <rect x={labelWidth} y={3} height={row - 8} width={Math.max(0, x(values[i]))} />
          <text x={labelWidth + Math.max(0, x(values[i])) + 6} y={row / 2} dy="0.32em" className="bar-text">
            {bar.text}
          </text>
        </g>
      ))}
    </ChartFrame>
  );
}
