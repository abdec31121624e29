"""wirewatch.bench"""
