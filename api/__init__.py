"""HTTP only: schemas, routes, auth, error mapping. Calls into geo/ and cases/."""
