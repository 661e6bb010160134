import { useEffect, useState } from "react";
import { useMutation, useQuery, useSubscription, type CombinedError } from "urql";
import { graphql } from "./gql";
import type { OrderEventsSubscription, OrderSide } from "./gql/graphql";
import { ruleProblems } from "./orderRules";

const OrderEvents = graphql(`
  subscription OrderEvents($accountId: ID!, $afterSequence: Int) {
    orderEvents(accountId: $accountId, afterSequence: $afterSequence) {
      sequence
      kind
      at
      text
      order {
        id
        externalId
        symbol
        side
        type
        quantity
        filledQuantity
        price
        averageFillPrice
        status
        rejectReason
        executions {
          externalId
          quantity
          price
          executedAt
        }
      }
    }
  }
`);

const OrderRules = graphql(`
  query OrderRules($accountId: ID!, $symbols: [String!]) {
    instruments(accountId: $accountId, symbols: $symbols) {
      symbol
      tickSize
      minQuantity
      maxQuantity
      quantityIncrement
    }
  }
`);

const PlaceOrder = graphql(`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      replayed
      order {
        id
        externalId
        status
      }
      errors {
        code
        message
        field
      }
    }
  }
`);

const CancelOrder = graphql(`
  mutation CancelOrder($input: CancelOrderInput!) {
    cancelOrder(input: $input) {
      order {
        id
        status
      }
      errors {
        code
        message
      }
    }
  }
`);

type Order = NonNullable<OrderEventsSubscription["orderEvents"]["order"]>;

interface Blotter {
  /** True once the first event (the stream's snapshot) arrived: updates are live from here. */
  live: boolean;
  lastSequence: number;
  /** Orders by id, in the order they first appeared. */
  orders: Map<string, Order>;
  /** Every state each order was seen in, so the journey PENDING → WORKING stays visible. */
  history: Map<string, string[]>;
}

const EMPTY: Blotter = { live: false, lastSequence: 0, orders: new Map(), history: new Map() };

const FINAL = new Set(["FILLED", "CANCELLED", "REJECTED", "EXPIRED"]);

/** The code of the instruments query's typed error, if it failed with one. */
function errorCode(error: CombinedError | undefined): string | null {
  const code = (error?.graphQLErrors[0]?.extensions as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : null;
}

/** The order's fills as the platform reported them, newest last. */
function Fills({ order }: { order: Order }) {
  const fills = order.executions;
  // null: the platform reports no fills one by one (filledQuantity is still the total).
  if (fills === null || fills === undefined) return <span className="fills-none">not itemised</span>;
  if (fills.length === 0) return <span className="fills-none">—</span>;
  return (
    <details className="fills">
      <summary>
        {fills.length} fill{fills.length === 1 ? "" : "s"}
        {order.averageFillPrice ? ` · avg ${order.averageFillPrice}` : ""}
      </summary>
      <ol>
        {fills.map((f) => (
          <li key={f.externalId} data-fill={f.externalId} data-quantity={f.quantity} data-price={f.price}>
            {f.quantity} @ {f.price} <time dateTime={f.executedAt}>{f.executedAt.slice(11, 19)}</time>
          </li>
        ))}
      </ol>
    </details>
  );
}

export function Orders({ accountId }: { accountId: string }) {
  const [{ data: blotter = EMPTY, error: streamError }] = useSubscription(
    // afterSequence is left to the transport (client.ts): it moves it to the last
    // sequence received on the payload graphql-ws re-sends, so a reconnect resumes.
    // In these variables it would restart the subscription on every event.
    { query: OrderEvents, variables: { accountId } },
    (previous: Blotter | undefined, event: OrderEventsSubscription): Blotter => {
      const current = previous ?? EMPTY;
      const { sequence, order } = event.orderEvents;
      // An order event is identified by its sequence: one event per sequence, growing
      // by one (the snapshot's events carry, ascending, the sequence that set each
      // order).  The transport resumes after the last one, so an old sequence can only
      // be an event already applied.
      if (sequence <= current.lastSequence || !order) {
        return { ...current, live: true, lastSequence: Math.max(current.lastSequence, sequence) };
      }
      const orders = new Map(current.orders).set(order.id, order);
      const seen = current.history.get(order.id) ?? [];
      const history = new Map(current.history);
      if (seen[seen.length - 1] !== order.status) history.set(order.id, [...seen, order.status]);
      return { live: true, lastSequence: sequence, orders, history };
    },
  );
  const [placing, placeOrder] = useMutation(PlaceOrder);
  const [, cancelOrder] = useMutation(CancelOrder);
  const [symbol, setSymbol] = useState("ESZ26");
  const [side, setSide] = useState<OrderSide>("BUY");
  const [quantity, setQuantity] = useState("1");
  const [price, setPrice] = useState("5000.00");
  const [message, setMessage] = useState<string | null>(null);
  // The platform's rules for the symbol, asked once typing pauses.
  const [ruleSymbol, setRuleSymbol] = useState(symbol);
  useEffect(() => {
    const timer = setTimeout(() => setRuleSymbol(symbol.trim()), 400);
    return () => clearTimeout(timer);
  }, [symbol]);
  const [rulesAnswer] = useQuery({
    query: OrderRules,
    variables: { accountId, symbols: [ruleSymbol] },
    pause: !ruleSymbol,
  });
  const rulesError = errorCode(rulesAnswer.error);
  const rules = rulesAnswer.data?.instruments?.[0] ?? null;
  // CAPABILITY_NOT_SUPPORTED (QST): no rules to check; the platform checks on placement.
  const rulesState = rules ? "checked" : rulesError === "CAPABILITY_NOT_SUPPORTED" ? "unavailable" : "unknown";
  const problems =
    rulesError === "NOT_FOUND"
      ? [`${ruleSymbol} is not an instrument this account can trade.`]
      : rules
        ? ruleProblems(rules, quantity, price)
        : [];

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setMessage(null);
    if (problems.length) return;
    // One key per submission: a retry of this same submission can never place twice.
    const result = await placeOrder({
      input: {
        accountId,
        symbol,
        side,
        type: "LIMIT",
        quantity,
        price,
        idempotencyKey: crypto.randomUUID(),
      },
    });
    const errors = result.data?.placeOrder.errors ?? [];
    if (result.error) setMessage(result.error.message);
    else if (errors.length) setMessage(errors.map((e) => `${e.code}: ${e.message}`).join("; "));
    else setMessage(`Order ${result.data?.placeOrder.order?.externalId ?? ""} sent`);
  }

  async function cancel(orderId: string) {
    const result = await cancelOrder({ input: { orderId } });
    const errors = result.data?.cancelOrder.errors ?? [];
    if (result.error) setMessage(result.error.message);
    else if (errors.length) setMessage(errors.map((e) => `${e.code}: ${e.message}`).join("; "));
  }

  return (
    <>
      <form className="order-form" onSubmit={submit} data-rules={rulesState}>
        <label>
          Symbol
          <input value={symbol} onChange={(e) => setSymbol(e.target.value)} required />
        </label>
        <label>
          Side
          <select value={side} onChange={(e) => setSide(e.target.value as OrderSide)}>
            <option value="BUY">BUY</option>
            <option value="SELL">SELL</option>
          </select>
        </label>
        <label>
          Quantity
          <input
            value={quantity}
            inputMode="decimal"
            onChange={(e) => setQuantity(e.target.value)}
            required
            aria-invalid={problems.some((p) => p.startsWith("Quantity"))}
          />
        </label>
        <label>
          Limit price
          <input
            value={price}
            inputMode="decimal"
            onChange={(e) => setPrice(e.target.value)}
            required
            aria-invalid={problems.some((p) => p.startsWith("Limit price"))}
          />
        </label>
        <button type="submit" disabled={placing.fetching || problems.length > 0}>
          Place order
        </button>
      </form>
      {problems.length > 0 && (
        <ul className="field-error order-problems" aria-live="polite">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      {rules && (
        <p className="hint order-rules">
          {rules.symbol}: tick {rules.tickSize ?? "any"}, quantity {rules.minQuantity ?? "any"} to{" "}
          {rules.maxQuantity ?? "any"}
          {rules.quantityIncrement ? ` in steps of ${rules.quantityIncrement}` : ""}.
        </p>
      )}
      {message && (
        <p role="status" className="order-message">
          {message}
        </p>
      )}
      {streamError && (
        <p role="alert">Live updates interrupted: {streamError.message}</p>
      )}
      <table className="blotter" data-live={blotter.live}>
        <caption>
          {blotter.live ? `Live orders (event ${blotter.lastSequence})` : "Connecting to live orders…"}
        </caption>
        <thead>
          <tr>
            <th scope="col">Order</th>
            <th scope="col">Symbol</th>
            <th scope="col">Side</th>
            <th scope="col">Quantity</th>
            <th scope="col">Price</th>
            <th scope="col">Status</th>
            <th scope="col">Fills</th>
            <th scope="col">Seen</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {[...blotter.orders.values()].reverse().map((order) => (
            <tr key={order.id} data-order={order.externalId}>
              <td data-label="Order">{order.externalId}</td>
              <td data-label="Symbol">{order.symbol}</td>
              <td data-label="Side">{order.side}</td>
              <td data-label="Quantity" className="num quantity" data-filled={order.filledQuantity}>
                {order.filledQuantity}/{order.quantity}
              </td>
              <td data-label="Price" className="num">{order.price ?? "market"}</td>
              <td data-label="Status" className={`status status-${order.status}`}>{order.status}</td>
              <td data-label="Fills" className="fills-cell">
                <Fills order={order} />
              </td>
              <td data-label="Seen" className="history">{(blotter.history.get(order.id) ?? []).join(" → ")}</td>
              <td>
                {!FINAL.has(order.status) && (
                  <button type="button" onClick={() => void cancel(order.id)}>
                    Cancel {order.externalId}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
