"""Decoding and encoding: photos (imageio) and videos (video)."""
