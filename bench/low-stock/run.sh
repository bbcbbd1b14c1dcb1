#!/usr/bin/env bash
# Orders racing for a product that runs low, pgbench calling place_order directly (README,
# Security, Deadlocks): 48 clients, 2 orders each of 3-9 units, one product split into 16
# buckets of 12 units. Per run: failures by kind, mean latency, orders placed, units sold, left.
#   PGURL    postgres:// URI of a server whose role has CREATEDB (required); database
#            orders_low_stock is dropped and re-created on it
#   UPTO     apply the migrations up to this version, default all (3: before the fix)
#   SCRIPT   order (no retries, default) or order-retried (the store's retry, needs V6)
#   RUNS     default 3
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
: "${PGURL:?set PGURL}"
UPTO=${UPTO:-999}
SCRIPT=${SCRIPT:-order}
RUNS=${RUNS:-3}
db="${PGURL%/*}/orders_low_stock"
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -c "DROP DATABASE IF EXISTS orders_low_stock" -c "CREATE DATABASE orders_low_stock" "$PGURL"
printf '%s\n' "$here"/../../migrations/V*__*.sql | sort -V | while read -r file; do
  version=${file##*/V}
  if [ "${version%%__*}" -le "$UPTO" ]; then psql -f "$file" "$db"; fi
done
psql -f "$here/setup.sql" "$db"
for _ in $(seq "$RUNS"); do
  psql -f "$here/reset.sql" "$db"
  pgbench -n -c 48 -j 2 -t 2 --failures-detailed -f "$here/$SCRIPT.pgbench" "$db" 2>&1 |
    grep -E 'processed|failures|latency average' || true
  command psql -X -At -F ' ' "$db" -c "SELECT 'orders placed', count(*), 'units sold',
    (SELECT coalesce(sum(quantity), 0) FROM order_items), 'left',
    (SELECT sum(stock) FROM product_stock) FROM orders"
done
