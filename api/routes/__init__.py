"""One router per resource; routes stay thin and raise domain errors."""
