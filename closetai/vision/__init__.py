"""The model and what it returns: detections, taxonomy, model, predictor, embeddings, colour, drawing, device, people."""
