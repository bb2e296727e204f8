"""Rendering only: folium/branca pages built from data given to them."""
