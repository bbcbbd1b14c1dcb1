#!/usr/bin/env bash
# make dev: the whole store on http://127.0.0.1:8080 (PORT/BIND override) with a
# project-local PostgreSQL in .dev/ (or DATABASE_URL if set), a project-local Redis for the
# welcome-email queue (or QUEUE_URL if set), the seed's admin and demo products. Ctrl-C
# stops the server and the services this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
mkdir -p .dev

apt_install jq
dev_database

# The welcome-email queue: Redis Streams, consumed by the worker inside `gamestore serve`.
if [ -z "${QUEUE_URL:-}" ]; then
  dev_service redis .dev/redis 6380
  export QUEUE_URL="redis://127.0.0.1:$service_port"
fi

# A random secret for this checkout only; outside dev, the process refuses to start without one.
if [ ! -s .dev/jwt_secret ]; then
  (umask 077 && head -c 48 /dev/urandom | base64 -w0 >.dev/jwt_secret)
fi
JWT_SECRET=$(cat .dev/jwt_secret)
export JWT_SECRET
# The log shows each mail's masked recipient only; the whole mail goes to this file.
export MAIL_LOG=${MAIL_LOG:-.dev/mail.log}

dev_build_and_seed

api="http://${BIND:-127.0.0.1}:${PORT:-8080}/api/v1"
cat <<MSG

  The game store is starting on $api  (Ctrl-C stops it)

  curl -s $api/products
  curl -s -X POST $api/auth/register -H 'content-type: application/json' \\
       -d '{"email":"ann@example.com","password":"correct horse"}'
  TOKEN=\$(curl -s -X POST $api/auth/login -H 'content-type: application/json' \\
       -d '{"email":"ann@example.com","password":"correct horse"}' | jq -r .token)
  curl -s -X POST $api/orders -H "authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -d '{"product_id":1}'

  Each register sends its welcome mail through the queue by the in-process email
  worker: the log says "mail sent (log mailer)", the mail is in $MAIL_LOG.
  Admin: admin@gamestore.com / admin123 — the README walks through the rest.

MSG
"$bin" serve
