"""wirewatch.plots"""
