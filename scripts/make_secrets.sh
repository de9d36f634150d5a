#!/usr/bin/env bash
# Create the secret files docker-compose.yml mounts (once; existing files are kept):
#   secrets/django_secret_key  secrets/admin_password  secrets/ip_salt  secrets/postgres_password
# Run as root, they are made readable only by the image's user (uid 10001; the database password
# also by the postgres image's group 999); otherwise they are
# readable by your group, and you must make them readable by uid 10001 yourself.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/secrets"
mkdir -p "$DIR"
umask 077
for name in django_secret_key admin_password ip_salt postgres_password; do
    file="$DIR/$name"
    if [ -s "$file" ]; then echo "kept    $file"; continue; fi
    python3 -c 'import secrets; print(secrets.token_urlsafe(48))' > "$file"
    echo "created $file"
done
if [ "$(id -u)" = 0 ]; then
    chown 10001:10001 "$DIR"/django_secret_key "$DIR"/admin_password "$DIR"/ip_salt
    chmod 0400 "$DIR"/django_secret_key "$DIR"/admin_password "$DIR"/ip_salt
    # The postgres image reads its password file as the postgres user (uid/gid 999).
    chown 10001:999 "$DIR"/postgres_password
    chmod 0440 "$DIR"/postgres_password
else
    chmod 0640 "$DIR"/*
    echo "note: the app containers run as uid 10001; make these files readable by it (e.g. sudo chown 10001 $DIR/*)."
fi
echo "admin password: $DIR/admin_password (user: admin)"
