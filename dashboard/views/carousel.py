"""The Carousel page (a carousel: ?carousel=NAME)."""

from dashboard.carousels import render

render()
