"""wirewatch.train"""
