"""gearspec.reference: a reference Gearman job server, client, worker and admin client."""
